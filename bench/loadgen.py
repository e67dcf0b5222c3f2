"""A bounded keep-alive HTTP/1.1 load generator for the benchmark (standard library only).

Raw HTTP/1.1 over asyncio streams: `concurrency` persistent connections, each with at most one
request outstanding (no pipelining). Two modes:

- burst: send `count` requests as fast as the connections allow (closed loop);
- paced: send `rate` requests per second for `duration` seconds on a fixed schedule (open loop:
  request i is due at start + i / rate whatever happened to earlier ones). When every connection
  is busy a due request waits for one; that wait is recorded as lag, not hidden, so a server that
  cannot keep up shows it in the lag and in latency measured from the schedule.

Every run is bounded by its count and by a deadline, and only loopback targets are accepted: this
tool must never be pointed at someone else's server. Per request it records the status, the
latency, the wall-clock send and answer times (`time.time()`, comparable with the receiver's
arrival times on the same machine) and the parsed JSON response, so the runner can pair the 202's
event `id` with the delivery that carries it as `webhook-id`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
# A server may close an idle keep-alive connection at any moment (gunicorn did after 2 s). A
# request written into a connection the server is closing fails without being processed, or
# worse, is processed with no answer; reconnecting after a short idle time avoids both.
IDLE_RECONNECT_SECONDS = 1.0
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Enough of an error answer to tell Django's HTML error pages apart (the CSRF page says so late).
ERROR_BODY_BYTES = 4096


class NotLoopback(ValueError):
    pass


def check_loopback(host: str) -> None:
    if host not in LOOPBACK_HOSTS:
        raise NotLoopback(f"refusing to load {host!r}: only 127.0.0.1 or localhost are allowed")


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __post_init__(self) -> None:
        check_loopback(self.host)


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass
class Sample:
    index: int
    status: int  # 0: no HTTP answer (connection error or timeout), see `error`
    error: str
    sent_at: float  # wall clock, when the request was written
    answered_at: float  # wall clock, when the whole response had been read
    latency: float  # seconds, monotonic, send to last byte of the response
    scheduled_at: float | None = None  # wall clock, paced mode only
    response: Any = None  # the parsed JSON body of an expected answer

    @property
    def lag(self) -> float | None:
        """How late the request left relative to its schedule (paced mode)."""
        return None if self.scheduled_at is None else self.sent_at - self.scheduled_at


@dataclass
class Result:
    mode: str
    expect_status: int
    samples: list[Sample]
    started_at: float  # wall clock
    finished_at: float  # wall clock
    unsent: int = 0  # requests the deadline cut off before they left

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == self.expect_status and not s.error]

    def errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status != self.expect_status or s.error]

    def summary(self) -> dict[str, Any]:
        ok = self.ok()
        latencies = [s.latency for s in ok]
        first_sent = min((s.sent_at for s in self.samples), default=self.started_at)
        last_answer = max((s.answered_at for s in ok), default=first_sent)
        elapsed = last_answer - first_sent
        lags = [s.lag for s in self.samples if s.lag is not None]
        error_kinds = Counter(
            s.error if s.status in (0, self.expect_status) else f"HTTP {s.status}"
            for s in self.errors()
        )
        return {
            "mode": self.mode,
            "sent": len(self.samples),
            "ok": len(ok),
            "errors": len(self.samples) - len(ok),
            "error_kinds": dict(error_kinds.most_common()),
            "unsent": self.unsent,
            "elapsed_s": round(elapsed, 3),
            "rate": len(ok) / elapsed if elapsed > 0 else 0.0,
            "latency_p50_ms": percentile(latencies, 50) * 1000,
            "latency_p99_ms": percentile(latencies, 99) * 1000,
            "latency_max_ms": max(latencies, default=math.nan) * 1000,
            "lag_p99_ms": percentile(lags, 99) * 1000 if lags else None,
            "lag_max_ms": max(lags) * 1000 if lags else None,
        }


def percentile(values: Iterable[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class ConnectionClosed(ConnectionError):
    pass


class Connection:
    """One persistent HTTP/1.1 connection; one request at a time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0
        self.host_header = f"{target.host}:{target.port}"

    async def _connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(
            self.target.host, self.target.port, limit=MAX_RESPONSE_BYTES
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, request: Request) -> tuple[int, bytes]:
        if self.writer is None or time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host_header}"]
        head += [f"{name}: {value}" for name, value in request.headers.items()]
        head.append(f"Content-Length: {len(request.body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        await self.writer.drain()
        status, keep_alive, body = await self._read_response()
        self.last_used = time.monotonic()
        if not keep_alive:
            self.close()
        return status, body

    async def _read_response(self) -> tuple[int, bool, bytes]:
        assert self.reader is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionClosed("connection closed before a response") from exc
        lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            body = await self.reader.read()  # delimited by the server closing the connection
            keep_alive = False
        return int(status), keep_alive, body

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


async def _exchange(
    connection: Connection,
    request: Request,
    *,
    index: int,
    expect_status: int,
    timeout: float,
    scheduled_at: float | None = None,
) -> Sample:
    sent_at = time.time()
    started = time.perf_counter()
    status, error, response = 0, "", None
    try:
        status, body = await asyncio.wait_for(connection.send(request), timeout)
        if status != expect_status:
            error = body[:ERROR_BODY_BYTES].decode("utf-8", errors="replace")
        elif body[:1] in (b"{", b"["):
            try:
                response = json.loads(body)
            except ValueError:
                error = "invalid JSON in the response"
    except TimeoutError:
        error = f"timeout after {timeout:g}s"
        connection.close()  # the answer may still come; it must not be read as the next one's
    except (OSError, asyncio.IncompleteReadError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        connection.close()
    latency = time.perf_counter() - started
    return Sample(
        index=index,
        status=status,
        error=error,
        sent_at=sent_at,
        answered_at=sent_at + latency,
        latency=latency,
        scheduled_at=scheduled_at,
        response=response,
    )


async def burst(
    target: Target,
    *,
    requests: Iterable[Request],
    concurrency: int,
    expect_status: int = 202,
    max_seconds: float = 600.0,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> Result:
    """Every request as fast as `concurrency` connections allow; none starts after max_seconds."""
    pending: Iterator[tuple[int, Request]] = enumerate(requests)
    samples: list[Sample] = []
    started_at = time.time()
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        connection = Connection(target)
        try:
            # next() and the deadline check run without an await between them, so the shared
            # iterator hands each request to exactly one worker.
            for index, request in pending:
                samples.append(
                    await _exchange(
                        connection,
                        request,
                        index=index,
                        expect_status=expect_status,
                        timeout=timeout,
                    )
                )
                if time.monotonic() > deadline:
                    return
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    unsent = sum(1 for _ in pending)
    samples.sort(key=lambda sample: sample.index)
    return Result("burst", expect_status, samples, started_at, time.time(), unsent=unsent)


async def paced(
    target: Target,
    *,
    make_request: Callable[[int], Request],
    rate: float,
    duration: float,
    concurrency: int,
    expect_status: int = 202,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    drain_seconds: float = 60.0,
) -> Result:
    """`rate` requests per second for `duration` s on an open-loop schedule, then drain.

    Requests still waiting for a connection `drain_seconds` after the schedule ended are dropped
    (counted as unsent): the run is bounded even against a server that stopped answering.
    """
    total = int(rate * duration)
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    samples: list[Sample] = []
    started_at = time.time()
    start = time.perf_counter()

    async def dispatcher() -> None:
        # Everything due is released at once, then sleep to the next due time: the schedule
        # holds even when asyncio.sleep oversleeps by a millisecond or two.
        index = 0
        while index < total:
            now = time.perf_counter() - start
            while index < total and index / rate <= now:
                due.put_nowait((index, started_at + index / rate))
                index += 1
            if index < total:
                await asyncio.sleep(max(0.0, index / rate - (time.perf_counter() - start)))
        for _ in range(concurrency):
            due.put_nowait(None)

    async def worker() -> None:
        connection = Connection(target)
        try:
            while (item := await due.get()) is not None:
                index, scheduled_at = item
                samples.append(
                    await _exchange(
                        connection,
                        make_request(index),
                        index=index,
                        expect_status=expect_status,
                        timeout=timeout,
                        scheduled_at=scheduled_at,
                    )
                )
        finally:
            connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await dispatcher()
    _, late = await asyncio.wait(workers, timeout=drain_seconds)
    for task in late:
        task.cancel()
    for task in late:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    samples.sort(key=lambda sample: sample.index)
    return Result(
        "paced", expect_status, samples, started_at, time.time(), unsent=total - len(samples)
    )


def static_requests(path: str, headers: dict[str, str], body: bytes, count: int) -> list[Request]:
    request = Request(path=path, body=body, headers=headers)
    return [request] * count


def http_json(
    host: str,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Any:
    """One blocking JSON request (setup and control calls, not load); raises on non-2xx."""
    check_loopback(host)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None
    finally:
        connection.close()


def wait_for_port(host: str, port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    """Stand-alone use against a running Herald, e.g. to poke at one setting by hand."""
    parser = argparse.ArgumentParser(description="Bounded keep-alive load on a loopback server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", default="/api/v1/events")
    parser.add_argument("--key", default="", help="API key for the Authorization header")
    parser.add_argument("--expect", type=int, default=202, help="the status that counts as ok")
    parser.add_argument("--concurrency", type=int, default=32)
    sub = parser.add_subparsers(dest="mode", required=True)
    burst_args = sub.add_parser("burst")
    burst_args.add_argument("--count", type=int, default=1000)
    paced_args = sub.add_parser("paced")
    paced_args.add_argument("--rate", type=float, default=100)
    paced_args.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()

    target = Target(args.host, args.port)
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"

    def make_request(index: int) -> Request:
        body = {"event_type": "bench.loadgen", "payload": {"seq": index}}
        return Request(path=args.path, body=json.dumps(body).encode(), headers=headers)

    if args.mode == "burst":
        coroutine = burst(
            target,
            requests=(make_request(i) for i in range(args.count)),
            concurrency=args.concurrency,
            expect_status=args.expect,
        )
    else:
        coroutine = paced(
            target,
            make_request=make_request,
            rate=args.rate,
            duration=args.duration,
            concurrency=args.concurrency,
            expect_status=args.expect,
        )
    print(json.dumps(asyncio.run(coroutine).summary(), indent=2))


if __name__ == "__main__":
    main()
