"""The benchmark's output: one table row per scenario, JSON results, the machine they came from."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

COLUMNS = (
    ("scenario", 10),
    ("events", 7),
    ("ingest/s", 9),
    ("ingest p50/p99 ms", 18),
    ("deliv/s", 8),
    ("e2e p50/p99 ms", 16),
    ("lost", 5),
    ("dup", 4),
    ("web/cluster MiB", 16),
    ("cores w/c/pg", 15),
    ("status", 11),
)


def _num(value: Any, digits: int = 0) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.{digits}f}"


def table_header() -> str:
    head = " ".join(title.rjust(width) for title, width in COLUMNS) + "  note"
    return head + "\n" + "-" * len(head)


def table_row(row: dict[str, Any]) -> str:
    ingest = row.get("ingest") or {}
    rss = row.get("rss_peak_mib") or {}
    cores = row.get("cpu_cores") or {}
    rate = row.get("events_per_s") or ingest.get("rate")
    cells = (
        row["scenario"],
        _num(row.get("events")),
        _num(rate),
        f"{_num(ingest.get('latency_p50_ms'), 1)} / {_num(ingest.get('latency_p99_ms'), 1)}",
        _num(row.get("deliveries_per_s")),
        f"{_num(row.get('e2e_p50_ms'))} / {_num(row.get('e2e_p99_ms'))}",
        _num(row.get("lost")),
        _num(row.get("duplicates")),
        f"{_num(rss.get('web'))} / {_num(rss.get('cluster'))}",
        "/".join(_num(cores.get(k), 1) for k in ("web", "cluster", "postgres")) if cores else "-",
        row.get("status", "-"),
    )
    line = " ".join(str(cell).rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))
    return f"{line}  {row.get('note', '')}".rstrip()


def write_json(path: Path, data: Any) -> None:
    """Write via a temporary file, so an interrupted run never leaves half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(temporary, path)


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python_loop_ms": python_loop_ms(),
    }


def python_loop_ms(iterations: int = 1_000_000, rounds: int = 5) -> float:
    """The best of a few runs of a plain Python loop: the machines these runs come from differ
    (and one machine's speed drifts) by more than most changes gain, so each result says how
    fast its machine ran Python."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i & 7
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)
