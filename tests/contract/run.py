"""Schemathesis against Herald running as in production: `python tests/contract/run.py`.

A fresh PostgreSQL database, granian and a real `manage.py qcluster` (DEBUG off, JSON logs),
seeded through the API with a little of everything (subscribers, a source, events delivered and
dead-lettered, an open circuit, operational events), then Schemathesis sends every operation in
the schema positive and negative data, within a time cap. The run fails on any 5xx, any response
that breaks the schema (status, content type, headers, body), any schema-valid request refused or
invalid one accepted, or any traceback or non-JSON line in the service's logs.

The fuzzer invents subscriber URLs, and the workers deliver to them. So that none of that traffic
can leave the machine, the whole run happens in a network namespace of its own with nothing but
loopback (`unshare --net`, which needs root, as CI has); PostgreSQL is reached through its Unix
socket. Nothing Herald sends can reach anything but the local receiver started here.

Results (logs, JUnit report) go to tests/contract/results/. See tests/contract/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/herald_contract"
ISOLATED = "HERALD_CONTRACT_ISOLATED"
SOCKET_DIR = "HERALD_CONTRACT_SOCKET_DIR"
HOST = "127.0.0.1"


# --- getting into a namespace with loopback only -------------------------------------------------


def socket_dir(database_url: str) -> str:
    """Where the PostgreSQL server keeps its Unix socket (asked over TCP, before isolating)."""
    with psycopg.connect(_maintenance_url(database_url), autocommit=True) as conn:
        (directories,) = conn.execute("SHOW unix_socket_directories").fetchone()
    return directories.split(",")[0].strip()


def reexec_isolated(argv: list[str], database_url: str) -> int:
    env = os.environ | {ISOLATED: "1", SOCKET_DIR: socket_dir(database_url)}
    command = ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve()), *argv]
    try:
        return subprocess.run(command, env=env, check=False).returncode
    except FileNotFoundError:
        print("unshare (util-linux) is needed to isolate the run's network", file=sys.stderr)
        return 2


def bring_loopback_up() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Anything but loopback must be unreachable, or the fuzzer's URLs could go out.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect only needs a route
    except OSError:
        return  # no route out: only loopback is reachable
    finally:
        probe.close()
    raise SystemExit("the contract run's network namespace has a route out; refusing to run")


# --- the database --------------------------------------------------------------------------------


def _maintenance_url(database_url: str) -> str:
    return urlsplit(database_url)._replace(path="/postgres").geturl()


def _database_name(database_url: str) -> str:
    name = urlsplit(database_url).path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"unexpected database name {name!r}")
    return name


def fresh_database(database_url: str, sockets: str) -> str:
    """Drop and create the database over the Unix socket; its DATABASE_URL for Django."""
    name = _database_name(database_url)
    user = urlsplit(database_url).username or "postgres"
    with psycopg.connect(host=sockets, dbname="postgres", user=user, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    # No host in the URL: libpq then connects through the socket directory in PGHOST.
    return f"postgres://{user}@/{name}"


# --- processes -----------------------------------------------------------------------------------


class Processes:
    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (RESULTS / f"{name}.log").open("wb")
        self.running[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {name}.log")

    def stop_all(self) -> None:
        for process in reversed(list(self.running.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Workers of a stopped parent must not outlive the run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- a receiver, and calls to the API ------------------------------------------------------------


class Receiver:
    """Answers 200 everywhere but /fail (500) and /gone (410); counts what it got per path."""

    def __init__(self) -> None:
        self.received: dict[str, int] = {}
        lock = threading.Lock()
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received[self.path] = received.get(self.path, 0) + 1
                status = {"/fail": 500, "/gone": 410}.get(self.path, 200)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()


class Api:
    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key

    def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(
                method,
                path,
                body=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            )
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if (expect and response.status != expect) or response.status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:300]!r}")
        return json.loads(data) if data else None

    def status(self, path: str) -> int:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()


def wait_until(condition, *, timeout: float, what: str, processes: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(OSError, RuntimeError):
            if condition():
                return
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def seed(api: Api, receiver: Receiver, processes: Processes) -> None:
    """A little of everything, made through the API, so lists hold real rows of every kind."""
    subscribers = [
        ("orders", "/orders", ["order.*"]),  # receives
        ("ops", "/ops", ["herald.*"]),  # gets the operational events
        ("broken", "/fail", ["order.*"]),  # fails until its circuit opens: held deliveries
        ("flaky", "/fail", ["refund.*"]),  # one delivery, fails twice: a dead letter
        ("leaving", "/gone", ["invoice.*"]),  # answers 410: deactivated, a dead letter
    ]
    for name, path, patterns in subscribers:
        api.call(
            "POST",
            "/api/v1/subscribers",
            {"name": name, "endpoint_url": receiver.url(path), "event_types": patterns},
        )
    api.call("POST", "/api/v1/sources", {"slug": "github", "name": "GitHub", "scheme": "github"})
    for n in range(6):
        api.call("POST", "/api/v1/events", {"event_type": "order.created", "payload": {"n": n}})
    api.call("POST", "/api/v1/events", {"event_type": "refund.issued", "payload": {"n": 1}})
    api.call(
        "POST",
        "/api/v1/events/batch",
        {
            "events": [
                {"event_type": "invoice.paid", "payload": {"id": 1}, "idempotency_key": "inv-1"}
            ]
        },
    )

    def settled() -> bool:
        metrics = api.call("GET", "/api/v1/metrics")
        return (
            metrics["dead_letters_unresolved"] >= 2
            and metrics["circuits"]["open"] >= 1
            and receiver.received.get("/ops", 0) >= 4
        )

    # Two attempts a delivery, a second apart (HERALD_RETRY_SCHEDULE=1): settled in seconds.
    wait_until(
        settled,
        timeout=60,
        what="dead letters, an open circuit and operational events",
        processes=processes,
    )


# --- the run -------------------------------------------------------------------------------------


def check_logs() -> list[str]:
    """Production logs are JSON, one object a line, and nothing crashed."""
    problems = []
    for name in ("web", "cluster"):
        for number, line in enumerate((RESULTS / f"{name}.log").read_text().splitlines(), 1):
            if not line.strip():
                continue
            if name == "web" and line.startswith("["):
                continue  # granian's own start-up and shutdown lines
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"{name}.log:{number}: not a JSON line: {line[:200]}")
                continue
            server_error = (
                entry.get("logger") == "django.request" and (entry.get("status_code") or 0) >= 500
            )
            if entry.get("level") in ("ERROR", "CRITICAL") or server_error:
                problems.append(f"{name}.log:{number}: {entry.get('message', '')[:300]}")
    return problems


def run(args: argparse.Namespace) -> int:
    bring_loopback_up()
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir(parents=True)
    database_url = fresh_database(args.database_url, os.environ[SOCKET_DIR])
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "PGHOST": os.environ[SOCKET_DIR],
        "DEBUG": "false",
        "SECRET_KEY": "contract-test-key-not-secret",
        "ALLOWED_HOSTS": f"{HOST},localhost",
        # Only loopback exists in this namespace: the seeded receivers are there.
        "HERALD_ALLOW_PRIVATE_TARGETS": "true",
        "HERALD_RETRY_SCHEDULE": "1",
        "HERALD_BREAKER_THRESHOLD": "3",
        "HERALD_CONNECT_TIMEOUT": "1",
        "HERALD_DELIVERY_TIMEOUT": "2",
        "HERALD_WORKERS": "1",
        "HERALD_QUEUE_POLL": "0.2",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    # As the Procfile's release step does: production serves the static files it collected.
    manage(env, "migrate", "--no-input")
    manage(env, "collectstatic", "--no-input")
    key = manage(env, "create_api_key", "contract").strip().splitlines()[-1]
    processes, receiver = Processes(), Receiver()
    try:
        processes.start(
            "web",
            [
                sys.executable,
                "-m",
                "granian",
                "config.wsgi:application",
                "--interface",
                "wsgi",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "2",
                "--blocking-threads",
                "4",
                "--workers-kill-timeout",
                "5",
            ],
            env,
        )
        processes.start("cluster", [sys.executable, "manage.py", "qcluster"], env)
        api = Api(port, key)
        # 200 needs the database, the migrations and a worker's heartbeat: the whole service.
        wait_until(
            lambda: api.status("/api/v1/health") == 200,
            timeout=90,
            what="GET /api/v1/health to answer 200",
            processes=processes,
        )
        seed(api, receiver, processes)
        print(f"Herald is up on {HOST}:{port} with seed data; running Schemathesis", flush=True)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"http://{HOST}:{port}/api/schema/?format=json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(args.max_examples),
            "--max-time",
            str(args.max_time),
            "--report",
            "junit",
            "--report-dir",
            str(RESULTS),
            *(["--seed", str(args.seed)] if args.seed is not None else []),
        ]
        status = subprocess.run(command, cwd=ROOT, env=os.environ, check=False).returncode
        processes.check_alive()
    finally:
        processes.stop_all()
        receiver.close()
    problems = check_logs()
    for problem in problems:
        print(f"log: {problem}", file=sys.stderr)
    if status == 0 and problems:
        status = 1
    print(f"contract run {'passed' if status == 0 else 'FAILED'}; logs in {RESULTS}", flush=True)
    return status


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("HERALD_CONTRACT_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and re-create (default %(default)s)",
    )
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation")
    parser.add_argument("--max-time", type=int, default=120, help="seconds Schemathesis may use")
    parser.add_argument("--seed", type=int, help="reproduce an earlier run")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not os.environ.get(ISOLATED):
        return reexec_isolated(argv, args.database_url)
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
