from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


class DemoReceiver:
    """`manage.py demo_receiver` in a subprocess of its own, on a free port."""

    def __init__(
        self, *args: str, database_url: str = "sqlite:////nonexistent/no-database"
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = os.environ | {
            # The same SECRET_KEY as the tests, so both derive the same demo secret; by default
            # no usable database, to prove the receiver verifies the demo without one.
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("HERALD_DEMO_SECRET", None)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "demo_receiver", "--port", str(self.port), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_until_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_until_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"demo_receiver exited: {self.lines}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"demo_receiver did not listen within {timeout}s: {self.lines}")

    def wait_for_lines(self, count: int, timeout: float = 10.0) -> list[str]:
        """The request lines printed so far (after the banner), once there are `count`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            requests = self.lines[1:]
            if len(requests) >= count:
                return requests
            time.sleep(0.05)
        raise AssertionError(f"expected {count} request lines, got {self.lines}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def demo_receiver():
    """Start a demo receiver with the given arguments; stopped at the end of the test."""
    started: list[DemoReceiver] = []

    def start(*args: str, **kwargs) -> DemoReceiver:
        started.append(DemoReceiver(*args, **kwargs))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()
