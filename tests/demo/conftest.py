from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.served import ServedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


class DemoReceiver(ServedProcess):
    """`manage.py demo_receiver` in a subprocess of its own, on a free port."""

    name = "demo_receiver"

    def __init__(
        self, *args: str, database_url: str = "sqlite:////nonexistent/no-database"
    ) -> None:
        port = free_port()
        env = os.environ | {
            # The same SECRET_KEY as the tests, so both derive the same demo secret; by default
            # no usable database, to prove the receiver verifies the demo without one.
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("HERALD_DEMO_SECRET", None)
        super().__init__(
            [sys.executable, "manage.py", "demo_receiver", "--port", str(port), *args],
            port=port,
            cwd=ROOT,
            env=env,
        )
        self.wait_until(self.listening, timeout=20.0)

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
