from __future__ import annotations

import json
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from subscribers.models import Subscriber
from subscribers.secrets import demo_secret

# Paths with a fixed behaviour, for the demo subscribers (see config.demo); any other path fails
# and hangs at the given rates.
HEALTHY_PATH = "/healthy"
DEAD_PATH = "/dead"


class Command(BaseCommand):
    help = (
        "Run a webhook receiver for demos and local testing: it verifies every Standard Webhooks "
        "signature, prints each request, and fails or hangs at the given rates, like a merchant "
        "server having a bad day. /healthy always answers 200 and /dead answers 410 Gone; every "
        "other path (/flaky, say) fails and hangs at --fail-rate and --slow-rate. Signatures are "
        "verified with --secret if given, else with the demo secret (see `manage.py demo`) and "
        "the secrets of subscribers whose endpoint is the requested URL."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.0,
            help="Share of requests answered 500 (0-1; default 0).",
        )
        parser.add_argument(
            "--slow-rate",
            type=float,
            default=0.0,
            help="Share of requests answered only after --slow-seconds (0-1; default 0).",
        )
        parser.add_argument(
            "--slow-seconds", type=float, default=15.0, help="Default 15 (past the timeout)."
        )
        parser.add_argument(
            "--secret",
            action="append",
            default=[],
            help="Verify with this whsec_ secret only (repeatable).",
        )

    def handle(self, *args, host, port, fail_rate, slow_rate, slow_seconds, secret, **options):
        for name, rate in (("--fail-rate", fail_rate), ("--slow-rate", slow_rate)):
            if not 0 <= rate <= 1:
                raise CommandError(f"{name} must be between 0 and 1, not {rate}")
        if fail_rate + slow_rate > 1:
            raise CommandError("--fail-rate and --slow-rate add up to more than 1")
        write = self.stdout.write
        fixed_secrets = secret

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                verdict = _verify(
                    body,
                    dict(self.headers),
                    lambda: fixed_secrets or [demo_secret()],
                    lambda: [] if fixed_secrets else _subscriber_secrets(path, port),
                )
                if verdict != "ok":
                    self._answer(401, verdict)
                    write(f"401 {self.path} {verdict}")
                    return
                status, slow = _behaviour(path, fail_rate=fail_rate, slow_rate=slow_rate)
                if slow:
                    time.sleep(slow_seconds)
                message = {200: "ok", 410: "gone", 500: "simulated failure"}[status]
                self._answer(status, message)
                event = json.loads(body)
                write(
                    f"{status} {self.path} {self.headers['webhook-id']} {event.get('type')}"
                    + (f" (after {slow_seconds:g}s)" if slow else "")
                )

            def _answer(self, status: int, message: str) -> None:
                payload = json.dumps({"result": message}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # Herald gave up waiting (a slow answer past its timeout): as intended

            def log_message(self, format: str, *args) -> None:
                pass  # one line per request is printed above, with what matters

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        write(
            f"Demo receiver on http://{host}:{server.server_address[1]}/ "
            f"(fail {fail_rate:.0%}, slow {slow_rate:.0%} for {slow_seconds:g}s; "
            f"{HEALTHY_PATH} always 200, {DEAD_PATH} always 410)"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _behaviour(path: str, *, fail_rate: float, slow_rate: float) -> tuple[int, bool]:
    """(status to answer, whether to hang first) for a verified request to `path`."""
    if path == HEALTHY_PATH:
        return 200, False
    if path == DEAD_PATH:
        return 410, False
    roll = random.random()
    if roll < fail_rate:
        return 500, False
    return 200, roll < fail_rate + slow_rate


def _subscriber_secrets(path: str, port: int) -> list[str]:
    """Signing secrets of the subscribers whose endpoint is this receiver's URL path.

    Only a demo can do this (it runs beside Herald, on its database); a real receiver is given
    its secret. Without a database (or before `migrate`) there are none.
    """
    secrets = []
    now = timezone.now()
    try:
        subscribers = list(
            Subscriber.objects.only(
                "endpoint_url", "secret", "previous_secret", "previous_secret_expires_at"
            )
        )
    except DatabaseError:
        return []
    for subscriber in subscribers:
        target = urlsplit(subscriber.endpoint_url)
        if target.port == port and (target.path or "/") == path:
            secrets.extend(subscriber.signing_secrets(now))
    return secrets


def _verify(body: bytes, headers: dict[str, str], *secret_sources) -> str:
    """ "ok" if a signature verifies with a secret from the first source that has a match.

    Sources are tried in order and only as needed, so the database is not read for requests
    the demo secret verifies.
    """
    tried = False
    for source in secret_sources:
        for secret in source():
            tried = True
            try:
                Webhook(secret).verify(body, headers)
                return "ok"
            except (WebhookVerificationError, ValueError):
                continue
    return "signature did not verify" if tried else "no secret to verify with"
