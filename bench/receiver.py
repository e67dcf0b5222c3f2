"""A fast HTTP/1.1 keep-alive webhook receiver for the benchmark (standard library only).

It answers every POST with `200 ok` (after `--delay` seconds, for the slow-receiver scenario) and
records, per request, the path, the `webhook-id` header and the arrival time (`time.time()`, the
same clock the load generator stamps, since both run on this machine). The runner reads the
records over two control endpoints that are never recorded themselves:

- `GET /_stats` -> `{"received", "unique", "in_flight", "peak_in_flight", "records": [[path,
  webhook_id, arrival], ...]}`; `GET /_stats?summary=1` leaves out the records (cheap to poll);
- `POST /_reset` forgets everything.

It runs in a process of its own so that it never competes with the runner for the GIL, and it is
deliberately minimal (no routing, no signature checks) so that it is not what limits Herald's
numbers: `python bench/receiver.py --selftest` measures it alone against the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class Receiver:
    """Per-request records and the in-flight gauge; all mutated on the event loop thread only."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.records: list[tuple[str, str, float]] = []
        # (path, webhook-id) pairs seen, so the runner can poll for completion without records.
        self.seen: set[tuple[str, str]] = set()
        self.in_flight = 0
        self.peak_in_flight = 0

    def reset(self) -> None:
        self.records = []
        self.seen = set()
        self.peak_in_flight = self.in_flight

    def stats(self, *, with_records: bool) -> dict:
        stats: dict = {
            "received": len(self.records),
            "unique": len(self.seen),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
        }
        if with_records:
            stats["records"] = self.records
        return stats

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Small responses must leave at once, not wait for Nagle to coalesce them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass  # the client went away mid-request or sent garbage: just drop the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection should close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False  # clean close between requests
        arrived = time.time()
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            # Herald always sends Content-Length; refusing keeps this parser small and honest.
            writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
            return False
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY_BYTES:
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
            return False
        if length:
            await reader.readexactly(length)
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"

        path = target.split("?", 1)[0]
        if path.startswith("/_"):
            writer.write(self._control(method, target))
            await writer.drain()
            return keep_alive

        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            webhook_id = headers.get("webhook-id", "")
            self.records.append((path, webhook_id, arrived))
            self.seen.add((path, webhook_id))
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            writer.write(OK_RESPONSE)
            await writer.drain()
        finally:
            self.in_flight -= 1
        return keep_alive

    def _control(self, method: str, target: str) -> bytes:
        path, _, query = target.partition("?")
        if path == "/_stats" and method == "GET":
            body = json.dumps(self.stats(with_records="summary=1" not in query)).encode()
            status = "200 OK"
        elif path == "/_reset" and method == "POST":
            self.reset()
            body, status = b'{"reset": true}', "200 OK"
        else:
            body, status = b'{"error": "unknown control endpoint"}', "404 Not Found"
        return (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


async def serve(host: str, port: int, delay: float) -> None:
    receiver = Receiver(delay)
    server = await asyncio.start_server(
        receiver.handle, host, port, limit=MAX_HEADER_BYTES, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"receiver listening on http://{host}:{port}/ delay={delay:g}s", flush=True)
    async with server:
        await stop.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def selftest(*, count: int, concurrency: int) -> dict:
    """The receiver alone, in its own process, driven by the load generator: its requests/s.

    Herald's best delivery rate has to stay well under this number for the benchmark to measure
    Herald and not its receiver.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import loadgen  # a sibling module; imported here so the plain receiver needs nothing else

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        loadgen.wait_for_port("127.0.0.1", port, timeout=10)
        result = asyncio.run(
            loadgen.burst(
                loadgen.Target("127.0.0.1", port),
                requests=loadgen.static_requests(
                    "/selftest", {"webhook-id": "selftest"}, b'{"x":1}', count
                ),
                concurrency=concurrency,
                expect_status=200,
            )
        )
        stats = loadgen.http_json("127.0.0.1", port, "GET", "/_stats?summary=1")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    summary = result.summary()
    return {
        "requests": count,
        "concurrency": concurrency,
        "ok": summary["ok"],
        "errors": summary["errors"],
        "recorded": stats["received"],
        "requests_per_second": summary["rate"],
        "latency_p50_ms": summary["latency_p50_ms"],
        "latency_p99_ms": summary["latency_p99_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument(
        "--selftest", action="store_true", help="measure the receiver alone and print requests/s"
    )
    parser.add_argument("--count", type=int, default=20_000, help="selftest requests")
    parser.add_argument("--concurrency", type=int, default=32, help="selftest connections")
    args = parser.parse_args()
    if args.selftest:
        result = selftest(count=args.count, concurrency=args.concurrency)
        print(json.dumps(result, indent=2))
        print(
            f"receiver alone: {result['requests_per_second']:,.0f} requests/s "
            f"({result['ok']} ok, {result['errors']} errors, {result['recorded']} recorded, "
            f"p99 {result['latency_p99_ms']:.1f} ms at concurrency {args.concurrency})"
        )
        sys.exit(0 if result["errors"] == 0 and result["recorded"] == args.count else 1)
    asyncio.run(serve(args.host, args.port, args.delay))


if __name__ == "__main__":
    main()
