from __future__ import annotations

import json
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from subscribers.models import Subscriber


class Command(BaseCommand):
    help = (
        "Run a webhook receiver for demos and local testing: it verifies every Standard Webhooks "
        "signature against the secrets of the subscribers pointing at it, prints each request, and "
        "fails or hangs at the given rates, like a merchant server having a bad day."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument(
            "--fail-rate", type=float, default=0.0, help="Share of requests answered 500 (0-1)."
        )
        parser.add_argument(
            "--slow-rate",
            type=float,
            default=0.0,
            help="Share of requests answered only after --slow-seconds (0-1).",
        )
        parser.add_argument("--slow-seconds", type=float, default=15.0)
        parser.add_argument(
            "--secret",
            action="append",
            default=[],
            help="Verify with this whsec_ secret instead of looking subscribers up.",
        )

    def handle(self, *args, host, port, fail_rate, slow_rate, slow_seconds, secret, **options):
        for name, rate in (("--fail-rate", fail_rate), ("--slow-rate", slow_rate)):
            if not 0 <= rate <= 1:
                raise CommandError(f"{name} must be between 0 and 1, not {rate}")
        write = self.stdout.write
        fixed_secrets = secret

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                secrets = fixed_secrets or _secrets_for(self.path, port)
                verdict = _verify(body, dict(self.headers), secrets)
                if verdict != "ok":
                    self._answer(401, verdict)
                    write(f"401 {self.path} {verdict}")
                    return
                event = json.loads(body)
                roll = random.random()
                if roll < fail_rate:
                    status = 500
                elif roll < fail_rate + slow_rate:
                    time.sleep(slow_seconds)
                    status = 200
                else:
                    status = 200
                self._answer(status, "simulated failure" if status == 500 else "ok")
                write(f"{status} {self.path} {self.headers['webhook-id']} {event.get('type')}")

            def _answer(self, status: int, message: str) -> None:
                payload = json.dumps({"result": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:
                pass  # one line per request is printed above, with what matters

        server = ThreadingHTTPServer((host, port), Handler)
        write(
            f"Demo receiver on http://{host}:{port}/ (fail {fail_rate:.0%}, slow {slow_rate:.0%})"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _secrets_for(path: str, port: int) -> list[str]:
    """Secrets of the subscribers whose endpoint is this receiver's URL path."""
    secrets = []
    for subscriber in Subscriber.objects.only("endpoint_url", "secret"):
        target = urlsplit(subscriber.endpoint_url)
        if target.port == port and (target.path or "/") == urlsplit(path).path:
            secrets.append(subscriber.secret)
    return secrets


def _verify(body: bytes, headers: dict[str, str], secrets: list[str]) -> str:
    if not secrets:
        return "no subscriber points at this URL"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            return "ok"
        except (WebhookVerificationError, ValueError):
            continue
    return "signature did not verify"
