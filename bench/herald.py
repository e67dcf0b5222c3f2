"""Herald as the benchmark runs it (a fresh database, granian and a qcluster, DEBUG off) and the
benchmark receiver's control endpoints."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import loadgen
import psycopg
from processes import ROOT, Processes

BENCH = Path(__file__).resolve().parent
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


class Herald:
    """A fresh database, granian and a qcluster, and the calls the scenarios make on them."""

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
                "granian",
                "config.wsgi:application",
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--blocking-threads",
                str(self.threads),
                "--workers-kill-timeout",
                "5",
                "--log-level",
                "warning",
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
                raise RuntimeError("granian did not answer /api/v1/health within 60 s")
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
