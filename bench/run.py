"""Herald's throughput and latency benchmark: `make bench`, or `python bench/run.py [--short]`.

It runs Herald as production does (gunicorn and `manage.py qcluster` on PostgreSQL, DEBUG off)
against a fresh database, a fast local receiver (measured alone first, so it is known not to be
the bottleneck) and a bounded keep-alive load generator, then runs the scenarios in order. Each
prints one table row when it finishes and writes `bench/results/<scenario>.json`; the whole run
also writes `bench/results/latest.json` with the machine it ran on. `--short` runs every scenario
with tiny sizes, for CI, and writes under `bench/results/short/` instead. See bench/README.md.

The exit status is 1 when a scenario crashed, lost or duplicated a delivery, or got an error
answer to an ingest request; never for a missed performance target, nor for a batch endpoint
that does not exist yet (that row says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402  (a sibling script, not a package)
import receiver  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/herald_bench"
EVENTS_PATH = "/api/v1/events"
BATCH_PATH = "/api/v1/events/batch"
SUBSCRIBERS_PATH = "/api/v1/subscribers"
# Everything Herald stores per event; the API key and the sweeper's schedule survive a reset.
RESET_TABLES = (
    "events_event",
    "deliveries_delivery",
    "deliveries_deliveryattempt",
    "deadletters_deadletter",
    "subscribers_subscriber",
    "django_q_ormq",
    "django_q_task",
)
SUSTAINED_P99_LIMIT_MS = 1000.0
RSS_SAMPLE_SECONDS = 0.25


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; FULL is what the issue asks for, SHORT keeps CI under a minute."""

    selftest_requests: int
    burst_events: int
    burst_concurrency: int
    paced_rate: float
    paced_duration: float
    paced_concurrency: int
    sustained_rates: tuple[float, ...]
    sustained_step_seconds: float
    sustained_confirm_seconds: float
    sustained_max_steps: int
    fanout_events: int
    fanout_subscribers: int
    fanout_concurrency: int
    slow_events: int
    slow_delay: float
    slow_concurrency: int
    batch_requests: int
    batch_size: int
    batch_concurrency: int
    # Waiting for deliveries gives up after this long without a new one arriving (a first retry
    # comes 5-5.5 s after a failed attempt, so this outlasts one), or after the cap in any case.
    drain_stall_seconds: float
    drain_cap_seconds: float
    # After the last expected delivery, how long to keep listening for duplicates.
    duplicate_grace_seconds: float


FULL = Sizes(
    selftest_requests=20_000,
    burst_events=5_000,
    burst_concurrency=32,
    paced_rate=300,
    paced_duration=20,
    paced_concurrency=64,
    # Starts low: on a 2-core machine Herald delivers well under 100/s (see the README).
    sustained_rates=(25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000),
    sustained_step_seconds=15,
    sustained_confirm_seconds=60,
    sustained_max_steps=13,
    fanout_events=1_000,
    fanout_subscribers=10,
    fanout_concurrency=32,
    slow_events=200,
    slow_delay=0.5,
    slow_concurrency=16,
    batch_requests=20,
    batch_size=500,
    batch_concurrency=4,
    drain_stall_seconds=20,
    drain_cap_seconds=900,
    duplicate_grace_seconds=2.0,
)
SHORT = Sizes(
    selftest_requests=3_000,
    burst_events=200,
    burst_concurrency=32,
    paced_rate=50,
    paced_duration=3,
    paced_concurrency=16,
    sustained_rates=(20, 40),
    sustained_step_seconds=3,
    sustained_confirm_seconds=3,
    sustained_max_steps=2,
    fanout_events=50,
    fanout_subscribers=3,
    fanout_concurrency=16,
    slow_events=40,
    slow_delay=0.2,
    slow_concurrency=8,
    batch_requests=2,
    batch_size=100,
    batch_concurrency=2,
    drain_stall_seconds=15,
    drain_cap_seconds=60,
    duplicate_grace_seconds=0.5,
)
SCENARIOS = ("burst", "paced", "sustained", "fanout", "slow", "batch")


# --- processes ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        pass  # the process is gone
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn's workers, the cluster's sentinel and workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(_children(current))
    return found


def rss_mib(pids: Sequence[int]) -> float:
    """Summed VmRSS. Forked workers share pages, so this over-counts them: an upper bound."""
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
    return total_kib / 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time used by a process tree, including children that exited and were reaped.

    utime + stime of each live process, plus cutime + cstime: what its reaped children used
    (django-q2 recycles a worker after 500 tasks; its CPU time moves to the sentinel this way).
    """
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may contain spaces; the fields after its closing paren do not.
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process: the database is part of what the benchmark loads.

    Other databases on the same server (another test run) are counted too; latest.json records
    the load average so such a run can be recognised.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


class Processes:
    """The child processes, each in a session of its own so a whole tree can be signalled."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child has its own copy of the descriptor
        self.running[name] = process
        return process

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode}; "
                    f"see {self.log_dir / (name + '.log')}"
                )

    def stop(self, name: str) -> None:
        process = self.running.pop(name, None)
        if process is None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=10)
        # A cluster's workers or a gunicorn worker may outlive their parent: reap the group.
        _signal_group(process, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            try:
                self.stop(name)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {name}: {exc}", file=sys.stderr)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


class ResourceSampler(threading.Thread):
    """Peak summed RSS of each process tree, sampled every RSS_SAMPLE_SECONDS."""

    def __init__(self, roots: dict[str, int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = roots
        self.peaks: dict[str, float] = dict.fromkeys(roots, 0.0)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.roots.items():
            value = rss_mib(process_tree(pid))
            with self._lock:
                self.peaks[name] = max(self.peaks[name], value)

    def take_peaks(self) -> dict[str, float]:
        """The peaks since the last call, and start over (one window per scenario)."""
        self.sample()
        with self._lock:
            peaks = {name: round(value, 1) for name, value in self.peaks.items()}
            self.peaks = dict.fromkeys(self.roots, 0.0)
        return peaks

    def stop(self) -> None:
        self._stop_event.set()


class CpuMeter:
    """CPU seconds each part of the system used over one scenario, as cores busy on average."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.started = time.monotonic()
        self.before = self._read()

    def _read(self) -> dict[str, float]:
        totals = {name: cpu_seconds(process_tree(pid)) for name, pid in self.roots.items()}
        totals["postgres"] = cpu_seconds(postgres_pids())
        totals["benchmark"] = cpu_seconds([os.getpid()])
        return totals

    def cores(self) -> dict[str, float]:
        after = self._read()
        wall = max(time.monotonic() - self.started, 1e-9)
        return {name: round((after[name] - self.before[name]) / wall, 2) for name in after}


# --- Herald and the receiver ------------------------------------------------------------------


class Herald:
    """A fresh database, gunicorn and a qcluster, and the calls the scenarios make on them."""

    def __init__(
        self, *, database_url: str, port: int, workers: int, threads: int, procs: Processes
    ) -> None:
        self.database_url = database_url
        self.port = port
        self.workers = workers
        self.threads = threads
        self.procs = procs
        self.api_key = ""
        self.env = os.environ | {
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "HERALD_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on loopback
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.db: psycopg.Connection | None = None

    def create_database(self) -> None:
        parts = urlsplit(self.database_url)
        name = parts.path.lstrip("/")
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unexpected database name {name!r}")
        maintenance = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self) -> None:
        self.create_database()
        self.manage("migrate", "--no-input")
        self.api_key = self.manage("create_api_key", "benchmark").strip().splitlines()[-1]
        self.db = psycopg.connect(self.database_url, autocommit=True)
        # A reset must never hang the run behind a lock someone forgot.
        self.db.execute("SET lock_timeout = '20s'")

    def start(self) -> dict[str, int]:
        web = self.procs.start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--graceful-timeout",
                "5",
            ],
            self.env,
        )
        cluster = self.procs.start("cluster", [sys.executable, "manage.py", "qcluster"], self.env)
        deadline = time.monotonic() + 60
        while True:
            self.procs.check_alive()
            with contextlib.suppress(OSError, RuntimeError):
                loadgen.http_json("127.0.0.1", self.port, "GET", "/api/v1/health", timeout=2)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /api/v1/health within 60 s")
            time.sleep(0.2)
        return {"web": web.pid, "cluster": cluster.pid}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def reset(self) -> None:
        assert self.db is not None
        self.db.execute(f"TRUNCATE {', '.join(RESET_TABLES)} CASCADE")

    def add_subscriber(self, name: str, url: str) -> str:
        body = {
            "name": name,
            "endpoint_url": url,
            "event_types": ["*"],
            "rate_limit_per_second": None,
        }
        created = loadgen.http_json(
            "127.0.0.1", self.port, "POST", SUBSCRIBERS_PATH, body, self.auth
        )
        return created["id"]

    def delivery_summary(self) -> dict[str, Any]:
        """What Herald's own tables say: deliveries by status, attempts, dead letters, jobs left."""
        assert self.db is not None
        by_status = dict(
            self.db.execute("SELECT status, count(*) FROM deliveries_delivery GROUP BY status")
        )
        (attempts,) = self.db.execute("SELECT count(*) FROM deliveries_deliveryattempt").fetchone()
        (dead,) = self.db.execute("SELECT count(*) FROM deadletters_deadletter").fetchone()
        (jobs,) = self.db.execute("SELECT count(*) FROM django_q_ormq").fetchone()
        failed_attempts = self.db.execute(
            "SELECT coalesce(status_code::text, error), count(*) FROM deliveries_deliveryattempt "
            "WHERE status_code IS NULL OR status_code >= 300 GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
        ).fetchall()
        return {
            "deliveries_by_status": by_status,
            "attempts": attempts,
            "failed_attempts": {str(k)[:200]: v for k, v in failed_attempts},
            "dead_letters": dead,
            "jobs_left": jobs,
        }

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


class ReceiverClient:
    """A receiver process and its control endpoints."""

    def __init__(self, procs: Processes, *, name: str, port: int, delay: float = 0.0) -> None:
        self.procs = procs
        self.name = name
        self.port = port
        procs.start(
            name,
            [
                sys.executable,
                str(BENCH / "receiver.py"),
                "--port",
                str(port),
                "--delay",
                str(delay),
            ],
            os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        loadgen.wait_for_port("127.0.0.1", port, timeout=10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reset(self) -> None:
        loadgen.http_json("127.0.0.1", self.port, "POST", "/_reset")

    def summary(self) -> dict[str, Any]:
        return loadgen.http_json("127.0.0.1", self.port, "GET", "/_stats?summary=1")

    def stats(self) -> dict[str, Any]:
        return loadgen.http_json("127.0.0.1", self.port, "GET", "/_stats")

    def stop(self) -> None:
        self.procs.stop(self.name)


# --- measuring one scenario -------------------------------------------------------------------


@dataclass
class Accepted:
    """Events Herald acknowledged: id -> (wall time the answer arrived, wall time it was sent)."""

    answered: dict[str, float] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)

    def add(self, event_id: str, *, answered_at: float, sent_at: float) -> None:
        self.answered[event_id] = answered_at
        self.sent[event_id] = sent_at


def accepted_events(result: loadgen.Result) -> Accepted:
    accepted = Accepted()
    for sample in result.ok():
        accepted.add(sample.response["id"], answered_at=sample.answered_at, sent_at=sample.sent_at)
    return accepted


def wait_for_deliveries(
    receiver_client: ReceiverClient, expected: int, sizes: Sizes, procs: Processes
) -> dict[str, Any]:
    """Until the receiver has `expected` distinct deliveries, progress stalls, or the cap."""
    started = time.monotonic()
    last_progress, last_unique = started, -1
    while True:
        unique = receiver_client.summary()["unique"]
        now = time.monotonic()
        if unique != last_unique:
            last_progress, last_unique = now, unique
        if unique >= expected:
            break
        if (
            now - last_progress > sizes.drain_stall_seconds
            or now - started > sizes.drain_cap_seconds
        ):
            break
        procs.check_alive()
        time.sleep(0.05)
    # Duplicates come after the original; give them a moment to show up.
    time.sleep(sizes.duplicate_grace_seconds)
    return receiver_client.stats()


def delivery_metrics(
    accepted: Accepted, paths: Sequence[str], stats: dict[str, Any]
) -> dict[str, Any]:
    """Lost, duplicated and unexpected deliveries, ingest->delivered latency, delivery rate.

    A delivery is the pair (receiver path, webhook-id): each subscriber has a path of its own and
    every request for an event carries the event id as webhook-id.
    """
    expected = {(path, event_id) for path in paths for event_id in accepted.answered}
    counts = Counter((path, webhook_id) for path, webhook_id, _ in stats["records"])
    first_arrival: dict[tuple[str, str], float] = {}
    for path, webhook_id, arrived in stats["records"]:
        key = (path, webhook_id)
        if key in expected and key not in first_arrival:
            first_arrival[key] = arrived
    lost = len(expected) - len(first_arrival)
    duplicates = sum(count - 1 for key, count in counts.items() if key in expected)
    unexpected = sum(count for key, count in counts.items() if key not in expected)
    # Latency from the moment the producer had its 202 (the event is Herald's from then on) to the
    # moment the receiver had the request. send_to_delivered also counts the ingest request.
    e2e = [
        arrived - accepted.answered[event_id] for (_, event_id), arrived in first_arrival.items()
    ]
    from_send = [
        arrived - accepted.sent[event_id] for (_, event_id), arrived in first_arrival.items()
    ]
    deciles = decile_medians(
        sorted(
            (accepted.answered[event_id], arrived - accepted.answered[event_id])
            for (_, event_id), arrived in first_arrival.items()
        )
    )
    arrivals = sorted(first_arrival.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    last_answer = max(accepted.answered.values(), default=None)
    return {
        "deliveries_expected": len(expected),
        "delivered": len(first_arrival),
        "lost": lost,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "deliveries_per_s": round((len(arrivals) - 1) / span, 1) if span > 0 else None,
        "e2e_p50_ms": ms(loadgen.percentile(e2e, 50)),
        "e2e_p99_ms": ms(loadgen.percentile(e2e, 99)),
        "e2e_max_ms": ms(max(e2e, default=float("nan"))),
        "e2e_p50_ms_by_ingest_decile": deciles,
        "send_to_delivered_p50_ms": ms(loadgen.percentile(from_send, 50)),
        "send_to_delivered_p99_ms": ms(loadgen.percentile(from_send, 99)),
        "drain_after_last_ingest_s": (
            round(arrivals[-1] - last_answer, 3) if arrivals and last_answer else None
        ),
        "peak_in_flight": stats["peak_in_flight"],
    }


def decile_medians(latencies_in_order: list[tuple[float, float]]) -> list[float | None]:
    """Median latency of each tenth of the events, in the order Herald accepted them.

    A FIFO backlog shows deciles rising; high early deciles mean old jobs waited behind newer
    ones (the job queue does not hand out the oldest first).
    """
    if len(latencies_in_order) < 10:
        return []
    tenth = len(latencies_in_order) / 10
    return [
        ms(
            loadgen.percentile(
                [lat for _, lat in latencies_in_order[int(i * tenth) : int((i + 1) * tenth)]], 50
            )
        )
        for i in range(10)
    ]


def ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1000, 1)  # NaN -> None


# Events are about 1 KiB of JSON, like the events the targets in issue #5 were measured with.
EVENT_BYTES = 1024


def bench_payload(*, scenario: str, seq: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"scenario": scenario, "seq": seq, "order_id": 100_000 + seq}
    envelope = len(
        json.dumps({"event_type": f"bench.{scenario}", "payload": {**payload, "note": ""}})
    )
    payload["note"] = "x" * max(0, EVENT_BYTES - envelope)
    return payload


def event_request(auth: dict[str, str], scenario: str) -> Callable[[int], loadgen.Request]:
    headers = {"Content-Type": "application/json", **auth}

    def make(index: int) -> loadgen.Request:
        body = {
            "event_type": f"bench.{scenario}",
            "payload": bench_payload(scenario=scenario, seq=index),
        }
        return loadgen.Request(path=EVENTS_PATH, body=json.dumps(body).encode(), headers=headers)

    return make


@dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    herald: Herald
    receiver: ReceiverClient
    procs: Processes
    sampler: ResourceSampler
    roots: dict[str, int]


class ScenarioError(Exception):
    """A scenario could not run as designed; its row says why."""


def scenario_run(
    ctx: Context,
    name: str,
    *,
    subscribers: int,
    load: Callable[[], loadgen.Result],
    receiver_client: ReceiverClient | None = None,
    accepted_from: Callable[[loadgen.Result], Accepted] = accepted_events,
) -> dict[str, Any]:
    """Reset, subscribe, load, wait for every delivery, measure: the shape of every scenario."""
    rc = receiver_client or ctx.receiver
    ctx.herald.reset()
    rc.reset()
    paths = [f"/{name}/{i}" for i in range(subscribers)]
    for path in paths:
        ctx.herald.add_subscriber(f"bench {path}", rc.url(path))
    ctx.sampler.take_peaks()
    cpu = CpuMeter(ctx.roots | {"receiver": rc.procs.running[rc.name].pid})
    result = load()
    accepted = accepted_from(result)
    stats = wait_for_deliveries(rc, len(accepted.answered) * subscribers, ctx.sizes, ctx.procs)
    metrics = delivery_metrics(accepted, paths, stats)
    ingest = result.summary()
    return {
        "scenario": name,
        "events": len(accepted.answered),
        "subscribers": subscribers,
        "ingest": ingest,
        **metrics,
        "cpu_cores": cpu.cores(),
        "rss_peak_mib": ctx.sampler.take_peaks(),
        "herald": ctx.herald.delivery_summary(),
    }


def judge(row: dict[str, Any]) -> dict[str, Any]:
    """ok, or fail when something was lost, duplicated or refused: correctness, not speed.

    An HTTP error answer to an ingest request fails the scenario (Herald refused or broke on a
    valid event); a request that timed out, or that the load generator's deadline kept from being
    sent, is a server too slow for the load: noted, but not a failure.
    """
    problems, remarks = [], []
    if row.get("lost"):
        problems.append(f"{row['lost']} lost")
    if row.get("duplicates"):
        problems.append(f"{row['duplicates']} duplicated")
    ingest = row.get("ingest") or {}
    kinds = ingest.get("error_kinds", {})
    refused = {kind: n for kind, n in kinds.items() if kind.startswith("HTTP ")}
    if refused:
        problems.append("ingest answered " + ", ".join(f"{k} x{n}" for k, n in refused.items()))
    if len(refused) < len(kinds):
        others = sum(n for kind, n in kinds.items() if kind not in refused)
        remarks.append(f"{others} ingest requests timed out or lost their connection")
    if ingest.get("unsent"):
        remarks.append(f"{ingest['unsent']} events unsent at the load deadline")
    row["status"] = "fail" if problems else "ok"
    row["note"] = "; ".join(filter(None, [*problems, *remarks, row.get("note", "")]))
    return row


# --- the scenarios ----------------------------------------------------------------------------


def run_burst(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    make = event_request(ctx.herald.auth, "burst")
    row = scenario_run(
        ctx,
        "burst",
        subscribers=1,
        load=lambda: asyncio.run(
            loadgen.burst(
                target(ctx),
                requests=(make(i) for i in range(s.burst_events)),
                concurrency=s.burst_concurrency,
            )
        ),
    )
    row["params"] = {"events": s.burst_events, "concurrency": s.burst_concurrency}
    return judge(row)


def paced_load(ctx: Context, scenario: str, rate: float, duration: float) -> loadgen.Result:
    return asyncio.run(
        loadgen.paced(
            target(ctx),
            make_request=event_request(ctx.herald.auth, scenario),
            rate=rate,
            duration=duration,
            concurrency=ctx.sizes.paced_concurrency,
        )
    )


def run_paced(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    row = scenario_run(
        ctx,
        "paced",
        subscribers=1,
        load=lambda: paced_load(ctx, "paced", s.paced_rate, s.paced_duration),
    )
    row["params"] = {
        "rate": s.paced_rate,
        "duration_s": s.paced_duration,
        "concurrency": s.paced_concurrency,
    }
    return judge(row)


def sustained_step(ctx: Context, rate: float, duration: float) -> dict[str, Any]:
    """One paced run; `kept_up` when nothing was lost and both ingest and delivery kept pace."""
    name = f"sustained-{rate:g}"
    row = judge(
        scenario_run(ctx, name, subscribers=1, load=lambda: paced_load(ctx, name, rate, duration))
    )
    row["params"] = {"rate": rate, "duration_s": duration}
    ingest = row["ingest"]
    # The producer's view of ingest: how long after its scheduled time each 202 came back.
    behind = (
        ingest["lag_p99_ms"] is not None
        and ingest["lag_p99_ms"] + ingest["latency_p99_ms"] >= SUSTAINED_P99_LIMIT_MS
    )
    reasons = []
    if row["status"] != "ok" or ingest["errors"] or ingest["unsent"]:
        reasons.append(row.get("note") or "ingest errors")
    if row["e2e_p99_ms"] is None or row["e2e_p99_ms"] >= SUSTAINED_P99_LIMIT_MS:
        reasons.append(f"delivery p99 {row['e2e_p99_ms']} ms")
    if behind:
        reasons.append("ingest fell behind the schedule")
    row["kept_up"] = not reasons
    row["why_not"] = "; ".join(reasons)
    return row


def run_sustained(ctx: Context) -> dict[str, Any]:
    """Step the paced rate up until delivery stops keeping up, then confirm the best rate longer.

    Steps are short (`sustained_step_seconds`) to find the candidate; the confirmation holds it
    for `sustained_confirm_seconds` (60 s in the full run). If the confirmation fails, the next
    lower rate that passed its step is confirmed instead.
    """
    s = ctx.sizes
    steps: list[dict[str, Any]] = []
    passed: list[float] = []
    for rate in s.sustained_rates[: s.sustained_max_steps]:
        step = sustained_step(ctx, rate, s.sustained_step_seconds)
        steps.append(step)
        print(
            f"    step {rate:g}/s for {s.sustained_step_seconds:g}s: "
            + ("kept up" if step["kept_up"] else f"did not keep up ({step['why_not']})")
            + f", e2e p99 {step['e2e_p99_ms']} ms",
            flush=True,
        )
        if not step["kept_up"]:
            break
        passed.append(rate)
    confirmed: dict[str, Any] | None = None
    for rate in reversed(passed[-2:]):
        confirmation = sustained_step(ctx, rate, s.sustained_confirm_seconds)
        steps.append(confirmation)
        print(
            f"    confirm {rate:g}/s for {s.sustained_confirm_seconds:g}s: "
            + ("kept up" if confirmation["kept_up"] else f"no ({confirmation['why_not']})"),
            flush=True,
        )
        if confirmation["kept_up"]:
            confirmed = confirmation
            break
    shown = confirmed or steps[-1]
    first_failure = next((step for step in steps if not step["kept_up"]), None)
    row = {
        key: shown.get(key)
        for key in ("events", "ingest", "e2e_p50_ms", "e2e_p99_ms", "deliveries_per_s")
    }
    row |= {
        "scenario": "sustained",
        "sustained_rate": confirmed["params"]["rate"] if confirmed else None,
        "lost": sum(step["lost"] for step in steps),
        "duplicates": sum(step["duplicates"] for step in steps),
        "steps": steps,
        "params": {
            "rates": list(s.sustained_rates[: s.sustained_max_steps]),
            "step_s": s.sustained_step_seconds,
            "confirm_s": s.sustained_confirm_seconds,
            "p99_limit_ms": SUSTAINED_P99_LIMIT_MS,
        },
        "rss_peak_mib": {
            name: max(step["rss_peak_mib"][name] for step in steps) for name in ctx.roots
        },
        "cpu_cores": shown["cpu_cores"],
    }
    if confirmed:
        note = f"kept up at {row['sustained_rate']:g}/s for {s.sustained_confirm_seconds:g}s"
    else:
        note = f"kept up at no tried rate (lowest {s.sustained_rates[0]:g}/s)"
    if first_failure is not None:
        rate = first_failure["params"]["rate"]
        note += f"; not at {rate:g}/s ({first_failure['why_not']})"
    row["note"] = note
    # Only lost or duplicated deliveries fail the scenario here: ingest errors at a rate above
    # what the machine can take are a finding about speed, not correctness.
    row["status"] = "fail" if row["lost"] or row["duplicates"] else "ok"
    return row


def run_fanout(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    make = event_request(ctx.herald.auth, "fanout")
    row = scenario_run(
        ctx,
        "fanout",
        subscribers=s.fanout_subscribers,
        load=lambda: asyncio.run(
            loadgen.burst(
                target(ctx),
                requests=(make(i) for i in range(s.fanout_events)),
                concurrency=s.fanout_concurrency,
            )
        ),
    )
    row["params"] = {
        "events": s.fanout_events,
        "subscribers": s.fanout_subscribers,
        "concurrency": s.fanout_concurrency,
    }
    return judge(row)


def run_slow(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    slow = ReceiverClient(ctx.procs, name="slow-receiver", port=free_port(), delay=s.slow_delay)
    try:
        make = event_request(ctx.herald.auth, "slow")
        row = scenario_run(
            ctx,
            "slow",
            subscribers=1,
            receiver_client=slow,
            load=lambda: asyncio.run(
                loadgen.burst(
                    target(ctx),
                    requests=(make(i) for i in range(s.slow_events)),
                    concurrency=s.slow_concurrency,
                )
            ),
        )
    finally:
        slow.stop()
    row["params"] = {"events": s.slow_events, "receiver_delay_s": s.slow_delay}
    row["note"] = f"receiver delay {s.slow_delay:g}s, peak in flight {row['peak_in_flight']}"
    return judge(row)


def run_batch(ctx: Context) -> dict[str, Any]:
    """POST /events/batch; a missing endpoint is reported as such, never as numbers."""
    s = ctx.sizes
    headers = {"Content-Type": "application/json", **ctx.herald.auth}

    def batch_request(index: int) -> loadgen.Request:
        events = [
            {
                "event_type": "bench.batch",
                "payload": bench_payload(scenario="batch", seq=index * s.batch_size + n),
            }
            for n in range(s.batch_size)
        ]
        body = json.dumps({"events": events}).encode()
        return loadgen.Request(path=BATCH_PATH, body=body, headers=headers)

    def accepted_from(result: loadgen.Result) -> Accepted:
        accepted = Accepted()
        if not result.ok() and result.samples and all(map(no_such_endpoint, result.samples)):
            status = Counter(sample.status for sample in result.samples).most_common(1)[0][0]
            raise ScenarioUnavailable(
                f"batch endpoint not available: HTTP {status}"
                + (" (Django's CSRF page: no route matched)" if status == 403 else "")
            )
        for sample in result.ok():
            events = (sample.response or {}).get("events")
            if not isinstance(events, list) or not all(
                isinstance(event, dict) and "id" in event for event in events
            ):
                raise ScenarioError(
                    'batch answered 202 without {"events": [{"id": ...}, ...]}: '
                    f"{json.dumps(sample.response)[:200]}"
                )
            for event in events:
                accepted.add(event["id"], answered_at=sample.answered_at, sent_at=sample.sent_at)
        return accepted

    row = scenario_run(
        ctx,
        "batch",
        subscribers=1,
        accepted_from=accepted_from,
        load=lambda: asyncio.run(
            loadgen.burst(
                target(ctx),
                requests=(batch_request(i) for i in range(s.batch_requests)),
                concurrency=s.batch_concurrency,
            )
        ),
    )
    elapsed = row["ingest"]["elapsed_s"]
    row["events_per_s"] = round(row["events"] / elapsed, 1) if elapsed else None
    row["params"] = {
        "requests": s.batch_requests,
        "events_per_request": s.batch_size,
        "concurrency": s.batch_concurrency,
    }
    row["note"] = f"{s.batch_requests} requests x {s.batch_size} events"
    return judge(row)


def no_such_endpoint(sample: loadgen.Sample) -> bool:
    """An answer that means the route does not exist, not that the request was wrong.

    404 and 405 as one would expect, and also 403 with Django's CSRF failure page: Herald's
    catch-all for unknown /api/ paths is a plain Django view, so CsrfViewMiddleware refuses a
    POST to it before it can answer its JSON 404.
    """
    if sample.status in (404, 405):
        return True
    return sample.status == 403 and "CSRF" in sample.error


class ScenarioUnavailable(Exception):
    """What the scenario measures does not exist (yet) in this Herald."""


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "burst": run_burst,
    "paced": run_paced,
    "sustained": run_sustained,
    "fanout": run_fanout,
    "slow": run_slow,
    "batch": run_batch,
}


def target(ctx: Context) -> loadgen.Target:
    return loadgen.Target("127.0.0.1", ctx.herald.port)


def warm_up(ctx: Context) -> None:
    """A few deliveries end to end: every process has connected and imported what it needs."""
    make = event_request(ctx.herald.auth, "warmup")
    row = scenario_run(
        ctx,
        "warmup",
        subscribers=1,
        load=lambda: asyncio.run(
            loadgen.burst(target(ctx), requests=(make(i) for i in range(50)), concurrency=8)
        ),
    )
    if row["lost"] or row["ingest"]["errors"]:
        raise RuntimeError(
            f"warm-up failed: {row['ingest']['errors']} ingest errors "
            f"({row['ingest']['error_kinds']}), {row['lost']} of 50 deliveries missing; "
            f"Herald says {row['herald']}; logs in {ctx.procs.log_dir}"
        )


# --- output -----------------------------------------------------------------------------------

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
    }


def free_port() -> int:
    return receiver.free_port()


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Herald throughput/latency benchmark (see bench/README.md)."
    )
    parser.add_argument("--short", action="store_true", help="tiny sizes, for CI")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and re-create (default %(default)s)",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--web-threads", type=int, default=4, help="gunicorn threads per process")
    parser.add_argument("--web-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--receiver-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--results", type=Path, default=None, help="where JSON results go")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    if args.results is None:
        args.results = BENCH / "results" / ("short" if args.short else "")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM takes the same way out as Ctrl-C, through every finally that stops a process.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SHORT if args.short else FULL
    signal.signal(signal.SIGTERM, _interrupt)
    log_dir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    procs = Processes(log_dir)
    results: list[dict[str, Any]] = []
    run_id = uuid.uuid4().hex[:8]
    started = time.monotonic()
    info = machine_info()
    mode = "short" if args.short else "full"
    print(f"Herald benchmark ({mode}), run {run_id}: logs in {log_dir}", flush=True)
    print(
        f"machine: {info['cpu_count']} cpus, {info['platform']}, python {info['python']}, "
        f"load average {info['load_average_at_start']}",
        flush=True,
    )

    herald: Herald | None = None
    sampler: ResourceSampler | None = None
    try:
        # The receiver alone first, on a quiet machine: the ceiling for any delivery rate.
        selftest = receiver.selftest(count=sizes.selftest_requests, concurrency=32)
        print(
            f"receiver alone: {selftest['requests_per_second']:,.0f} requests/s "
            f"(p99 {selftest['latency_p99_ms']:.1f} ms, {selftest['errors']} errors)",
            flush=True,
        )
        if selftest["errors"] or selftest["recorded"] != selftest["requests"]:
            raise RuntimeError(f"the receiver failed its self-test: {selftest}")

        herald = Herald(
            database_url=args.database_url,
            port=args.web_port or free_port(),
            workers=args.web_workers,
            threads=args.web_threads,
            procs=procs,
        )
        herald.prepare()
        roots = herald.start()
        rcv = ReceiverClient(procs, name="receiver", port=args.receiver_port or free_port())
        sampler = ResourceSampler(roots)
        sampler.start()
        ctx = Context(args, sizes, herald, rcv, procs, sampler, roots)
        warm_up(ctx)

        print(table_header(), flush=True)
        for name in args.scenarios:
            try:
                row = RUNNERS[name](ctx)
            except ScenarioUnavailable as exc:
                row = {"scenario": name, "status": "unavailable", "note": str(exc)}
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                (log_dir / f"{name}.traceback").write_text(traceback.format_exc())
                row = {
                    "scenario": name,
                    "status": "error",
                    "note": f"{type(exc).__name__}: {exc}"[:300],
                }
            row["mode"] = mode
            results.append(row)
            print(table_row(row), flush=True)
            write_json(args.results / f"{name}.json", row)
            if row["status"] == "error":
                procs.check_alive()  # a dead Herald makes every later row meaningless
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"logs: {log_dir}", file=sys.stderr)
        return 1
    finally:
        if sampler is not None:
            sampler.stop()
        procs.stop_all()
        if herald is not None:
            herald.close()

    write_json(
        args.results / "latest.json",
        {
            "mode": mode,
            "run": run_id,
            "machine": info,
            "duration_s": round(time.monotonic() - started, 1),
            "herald": {
                "web_workers": args.web_workers,
                "web_threads": args.web_threads,
                "environment": {
                    k: v for k, v in sorted(os.environ.items()) if k.startswith("HERALD_")
                },
            },
            "receiver_selftest": selftest,
            "scenarios": results,
        },
    )
    failed = [row["scenario"] for row in results if row["status"] in ("fail", "error")]
    print(
        f"\n{len(results)} scenario(s) in {time.monotonic() - started:.0f} s; results in "
        f"{args.results}; "
        + (f"FAILED: {', '.join(failed)}" if failed else "no delivery lost or duplicated"),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
