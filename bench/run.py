"""Herald's throughput and latency benchmark: `make bench`, or `python bench/run.py [--short]`.

It runs Herald as production does (granian and `manage.py qcluster` on PostgreSQL, DEBUG off)
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
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402  (sibling scripts, not a package)
import receiver  # noqa: E402
from herald import Herald, ReceiverClient  # noqa: E402
from processes import CpuMeter, Processes, ResourceSampler  # noqa: E402
from report import machine_info, table_header, table_row, write_json  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/herald_bench"
EVENTS_PATH = "/api/v1/events"
BATCH_PATH = "/api/v1/events/batch"
SUSTAINED_P99_LIMIT_MS = 1000.0


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
    sustained_max_confirmations: int
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
    # Starts low so that a slow machine still finds its rate; steps of 100 where 2 cores top out.
    sustained_rates=(25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000, 1500, 2000),
    sustained_step_seconds=15,
    sustained_confirm_seconds=60,
    sustained_max_steps=13,
    sustained_max_confirmations=4,
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
    sustained_max_confirmations=2,
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


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(f"{rate:g}/s" for rate in rates)


def run_sustained(ctx: Context) -> dict[str, Any]:
    """Step the paced rate up until delivery stops keeping up, then confirm the best rate longer.

    Steps are short (`sustained_step_seconds`) to find the candidate; the confirmation holds it
    for `sustained_confirm_seconds` (60 s in the full run). A short step can pass on what the
    queues absorb, so a failed confirmation moves down to the next lower rate that passed, up to
    `sustained_max_confirmations` of them.
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
    tried: list[float] = []
    for rate in reversed(passed[-s.sustained_max_confirmations :]):
        tried.append(rate)
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
    failures = [step for step in steps if not step["kept_up"]]
    # The failure nearest the rate that held says the most: a failed confirmation (a minute)
    # rather than the short step above it.
    nearest_failure = min(failures, key=lambda step: step["params"]["rate"], default=None)
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
            "max_confirmations": s.sustained_max_confirmations,
            "p99_limit_ms": SUSTAINED_P99_LIMIT_MS,
        },
        "rss_peak_mib": {
            name: max(step["rss_peak_mib"][name] for step in steps) for name in ctx.roots
        },
        "cpu_cores": shown["cpu_cores"],
    }
    if confirmed:
        note = f"kept up at {row['sustained_rate']:g}/s for {s.sustained_confirm_seconds:g}s"
    elif tried:
        note = f"no rate held for {s.sustained_confirm_seconds:g}s (tried {_rates(tried)})"
    else:
        note = f"kept up at no tried rate (lowest {s.sustained_rates[0]:g}/s)"
    if nearest_failure is not None:
        params = nearest_failure["params"]
        note += (
            f"; not at {params['rate']:g}/s for {params['duration_s']:g}s"
            f" ({nearest_failure['why_not']})"
        )
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


# --- output -------------------------------------------------------------------------------------


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
    parser.add_argument("--web-workers", type=int, default=3, help="granian worker processes")
    parser.add_argument("--web-threads", type=int, default=4, help="granian threads per process")
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
        f"load average {info['load_average_at_start']}, "
        f"a 10^6-step Python loop in {info['python_loop_ms']} ms",
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
