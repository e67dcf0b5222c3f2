"""A real `manage.py qcluster` subprocess pointed at the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

# Fast clocks so retries, leases and redelivery happen within a test's patience.
E2E_ENV = {
    "HERALD_RETRY_SCHEDULE": "1,1",
    "HERALD_DELIVERY_TIMEOUT": "2",
    "HERALD_CONNECT_TIMEOUT": "1",
    "HERALD_LEASE_SECONDS": "4",
    "HERALD_WORKERS": "2",
    "HERALD_QUEUE_POLL": "0.1",
    "HERALD_ALLOW_PRIVATE_TARGETS": "true",
}


def test_database_url() -> str:
    """The URL of the database pytest-django created, for a process outside this one."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    def __init__(self, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = os.environ | E2E_ENV | self.extra_env | {"DATABASE_URL": test_database_url()}
        log = self.log_path.open("ab")
        # A session of its own, so kill() reaches the sentinel, pusher, workers and monitor alike.
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """kill -9 of every process of the cluster, as a crashed machine would."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, *, whole_group: bool, timeout: float) -> int:
        """SIGTERM, as a service manager sends it (to the process group, or to the main process
        alone as Docker does), then the main process's exit code once it has exited by itself."""
        if whole_group:
            self._signal(signal.SIGTERM)
        else:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def sentinel_pid(self) -> int:
        """django-q2's sentinel: the main process's child, the parent of the workers."""
        (pid,) = [pid for pid, parent in _processes() if parent == self.process.pid]
        return pid

    def running_processes(self) -> int:
        """Processes of the cluster's group still running (zombies have ended)."""
        group = self.process.pid
        count = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == group and fields[0] != "Z":
                    count += 1
        return count

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        # Stray children must not run into the next test (delivering its events on the shared
        # database), whether or not the main process had already exited when the test ended.
        if self.running_processes():
            self._signal(signal.SIGKILL)
            time.sleep(0.2)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _processes() -> list[tuple[int, int]]:
    """(pid, parent pid) of every process running (zombies have ended)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                found.append((int(entry.name), int(fields[1])))
    return found
