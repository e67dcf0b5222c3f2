"""The Procfiles' web commands, run as written: granian serving Herald on a real socket.

Production (`Procfile`) and `make run` (`config/Procfile.dev`) start the web server from these
lines and nothing else checks them, so a typo or a flag granian no longer knows would only show
when someone deploys.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from config.apikeys import api_key_create
from events.models import Event
from tests.e2e import cluster
from tests.served import ServedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_APPLICATION_NAME = "herald-web-server-test"


def procfile_command(path: Path, process: str) -> str:
    for line in path.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError(f"{path} has no {process!r} process")


class WebServer(ServedProcess):
    """A Procfile command in a process group of its own, as a process manager runs it."""

    name = "the web server"

    def __init__(self, command: str, extra_env: dict[str, str] | None = None) -> None:
        port = free_port()
        env = (
            os.environ
            | (extra_env or {})
            | {
                "PORT": str(port),
                # The virtualenv's granian, as `make run` and a deployment put it on PATH.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "DATABASE_URL": cluster.test_database_url(),
                "DEBUG": "false",
                "SECRET_KEY": "web-server-test-key-not-secret",
                "ALLOWED_HOSTS": "127.0.0.1",
                "LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
                # libpq names the server's connections, so that a test can count them alone.
                "PGAPPNAME": SERVER_APPLICATION_NAME,
            }
        )
        # exec: the process is the server itself, whose exit code the tests read.
        command = command if command.startswith("exec ") else f"exec {command}"
        super().__init__(command, port=port, shell=True, cwd=ROOT, env=env, start_new_session=True)

    def wait_until_serving(self) -> None:
        self.wait_until(self.answering, timeout=30.0)
        # Every worker, not only the first: one stopped while still loading Django holds
        # granian's shutdown until --workers-kill-timeout.
        self.wait_until(self.all_workers_started, timeout=30.0)

    def answering(self) -> bool:
        requests.get(f"{self.url}/api/v1/health", timeout=2)
        return True

    def all_workers_started(self) -> bool:
        spawned = sum("Spawning worker-" in line for line in self.lines)
        started = sum("Started worker-" in line for line in self.lines)
        return started == spawned

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM to the whole group, as a platform stopping a dyno sends it; the exit code."""
        os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@pytest.fixture
def start_server():
    servers: list[WebServer] = []

    def start(command: str, extra_env: dict[str, str] | None = None) -> WebServer:
        server = WebServer(command, extra_env)
        servers.append(server)
        server.wait_until_serving()
        return server

    yield start
    for server in servers:
        server.kill()


def test_production_web_process_serves_the_api_and_logs_each_request(start_server):
    server = start_server(procfile_command(ROOT / "Procfile", "web"))
    key = api_key_create(name="web-server-test")

    answer = requests.get(
        f"{server.url}/api/v1/events",
        headers={"Authorization": f"Bearer {key.plaintext}"},
        timeout=10,
    )

    assert answer.status_code == 200
    assert answer.json()["results"] == []
    server.wait_until(
        lambda: any('"GET /api/v1/events' in line for line in server.lines), timeout=5
    )


def test_production_web_process_stops_cleanly_on_sigterm(start_server):
    server = start_server(procfile_command(ROOT / "Procfile", "web"))

    assert server.terminate() == 0


def test_a_body_announced_too_large_is_refused_before_it_is_sent(start_server):
    server = start_server(procfile_command(ROOT / "Procfile", "web"))
    key = api_key_create(name="web-server-test")
    announced = 1_000_000_000  # far past any limit; not one byte of it is sent

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(
            (
                "POST /api/v1/events HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\n"
                f"Authorization: Bearer {key.plaintext}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {announced}\r\n"
                "\r\n"
            ).encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    error = json.loads(body)["error"]
    assert str(announced) in error["message"]


def chunked(data: bytes, size: int = 1000):
    """A generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_is_read_whole(start_server, make_subscriber):
    server = start_server(procfile_command(ROOT / "Procfile", "web"))
    key = api_key_create(name="web-server-test")
    make_subscriber(event_types=["order.*"])
    event = {"event_type": "order.created", "payload": {"order_id": 42, "note": "x" * 5000}}

    answer = requests.post(
        f"{server.url}/api/v1/events",
        data=chunked(json.dumps(event).encode()),
        headers={"Authorization": f"Bearer {key.plaintext}", "Content-Type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 202, answer.text
    assert answer.request.headers["Transfer-Encoding"] == "chunked"
    stored = Event.objects.get(pk=answer.json()["id"])
    assert stored.payload == event["payload"]
    assert stored.deliveries.count() == 1


def test_a_chunked_body_over_a_limit_gets_413(start_server):
    server = start_server(procfile_command(ROOT / "Procfile", "web"))
    key = api_key_create(name="web-server-test")
    headers = {"Authorization": f"Bearer {key.plaintext}", "Content-Type": "application/json"}

    def post(size: int) -> requests.Response:
        body = b'{"event_type": "order.created", "payload": {"note": "' + b"x" * size + b'"}}'
        return requests.post(
            f"{server.url}/api/v1/events", data=chunked(body, 65536), headers=headers, timeout=30
        )

    # Over the endpoint's own limit: its usual 413, naming the body's size.
    over_endpoint = post(300_000)
    assert over_endpoint.status_code == 413
    assert "the limit is 262144 bytes" in over_endpoint.json()["error"]["message"]
    # Over every endpoint's limit: refused once that much has been read, never buffered whole.
    over_all = post(20_000_000)
    assert over_all.status_code == 413
    assert over_all.json()["error"]["code"] == "payload_too_large"
    assert "exceeds the limit of" in over_all.json()["error"]["message"]


def test_make_run_web_process_serves_the_api(start_server):
    server = start_server(procfile_command(ROOT / "config" / "Procfile.dev", "web"))

    answer = requests.get(f"{server.url}/api/v1/health", timeout=10)

    # No worker runs here, so the service reports itself unhealthy, in its own JSON.
    assert answer.status_code == 503
    health = answer.json()
    assert health["status"] == "unavailable"
    assert health["database"] == "ok"
    assert any(reason.startswith("cluster:") for reason in health["reasons"])


def start_with_short_lived_threads(start_server, procfile: Path, extra_env: dict[str, str]):
    """One web process of the Procfile's whose idle request threads retire after 5 s, loaded
    from 32 clients so that several threads ran; and a call that lists events (its status)."""
    command = procfile_command(procfile, "web") + " --blocking-threads-idle-timeout 5"
    server = start_server(command, {"WEB_CONCURRENCY": "1", **extra_env})
    key = api_key_create(name="web-server-test")
    headers = {"Authorization": f"Bearer {key.plaintext}"}

    def list_events(_=None) -> int:
        return requests.get(f"{server.url}/api/v1/events", headers=headers, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert set(pool.map(list_events, range(128))) == {200}
    return server, list_events


@pytest.mark.parametrize("procfile", [ROOT / "Procfile", ROOT / "config" / "Procfile.dev"])
def test_workers_outlive_their_retired_request_threads(start_server, procfile):
    # A retired thread's connections are closed as it ends (config.webdb); closing an sqlite3
    # connection there once crashed the worker, and with it `make run`, 30 s after any burst.
    server, list_events = start_with_short_lived_threads(start_server, procfile, {})
    time.sleep(8)  # past the idle timeout: granian retires all but one request thread

    assert list_events() == 200
    assert server.process.poll() is None
    crashes = [line for line in server.lines if "Unexpected exit" in line]
    assert crashes == []


def server_connections() -> int:
    """The web server's connections to the test database (not those of other tests' threads)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [SERVER_APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


postgresql_only = pytest.mark.skipif(
    "sqlite" in cluster.test_database_url(), reason="PostgreSQL's connections and statements"
)


@postgresql_only
def test_connections_of_retired_request_threads_are_closed(start_server):
    start_with_short_lived_threads(start_server, ROOT / "Procfile", {"WEB_THREADS": "4"})
    opened = server_connections()
    assert opened > 1, "the load should have run on several request threads"

    # granian keeps one request thread and retires the others after 5 s idle.
    deadline = time.monotonic() + 20
    while server_connections() > 1:
        assert time.monotonic() < deadline, f"{server_connections()} of {opened} still open"
        time.sleep(0.5)


@postgresql_only
def test_a_request_stuck_on_a_lock_is_ended_by_the_statement_timeout(start_server, make_subscriber):
    server = start_server(
        procfile_command(ROOT / "Procfile", "web"), {"HERALD_WEB_STATEMENT_TIMEOUT": "1"}
    )
    key = api_key_create(name="web-server-test")
    subscriber = make_subscriber()

    with psycopg.connect(cluster.test_database_url()) as locker:
        locker.execute(
            "SELECT 1 FROM subscribers_subscriber WHERE id = %s FOR UPDATE", [subscriber.id]
        )
        started = time.monotonic()
        answer = requests.patch(
            f"{server.url}/api/v1/subscribers/{subscriber.id}",
            json={"name": "renamed"},
            headers={"Authorization": f"Bearer {key.plaintext}"},
            timeout=30,
        )
        waited = time.monotonic() - started

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "server_error"
    assert 1 <= waited < 10
    assert any("statement timeout" in line for line in server.lines)
    subscriber.refresh_from_db()
    assert subscriber.name != "renamed"
