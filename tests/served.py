"""A server under test in a subprocess of its own: a free port, its output, its start-up."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServedProcess:
    """`command` started on `self.port`, its output (stdout and stderr) collected as lines."""

    name = "server"

    def __init__(self, command: list[str] | str, *, port: int, **popen) -> None:
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_until(self, answers: Callable[[], bool], *, timeout: float) -> None:
        """Until `answers()` is true (OSError counts as not yet); fails if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.lines}")
            with contextlib.suppress(OSError):
                if answers():
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer within {timeout}s: {self.lines}")

    def listening(self) -> bool:
        socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        return True
