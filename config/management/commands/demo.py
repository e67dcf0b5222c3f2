from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.demo import demo_run
from subscribers.urls_safety import UnsafeEndpoint


class Command(BaseCommand):
    help = (
        "Create (or reset) three demo subscribers at the demo receiver - healthy, flaky and "
        "dead - and fire a burst of events through normal ingestion, then say where to watch. "
        "Safe to run again: the subscribers are reused."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--receiver",
            default=settings.HERALD_DEMO_RECEIVER_URL,
            help="Base URL of the demo receiver (default: HERALD_DEMO_RECEIVER_URL, %(default)s).",
        )
        parser.add_argument("--events", type=int, default=30, help="Events to fire (1-500).")
        parser.add_argument(
            "--site",
            default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}",
            help="Where Herald's web server is, for the links printed (default %(default)s).",
        )

    def handle(self, *args, receiver: str, events: int, site: str, **options) -> None:
        if not 1 <= events <= settings.HERALD_MAX_BATCH_EVENTS:
            raise CommandError(
                f"--events must be between 1 and {settings.HERALD_MAX_BATCH_EVENTS}, not {events}"
            )
        try:
            run = demo_run(receiver_url=receiver, events=events, now=timezone.now())
        except UnsafeEndpoint as exc:
            raise CommandError(
                f"{exc} The demo receiver runs on this machine: allow private targets for the "
                "demo with DEBUG=true (make run does) or HERALD_ALLOW_PRIVATE_TARGETS=true."
            ) from exc
        write = self.stdout.write
        write("Demo subscribers (event types demo.*, signed with the demo secret):")
        for subscriber, behaviour in run.subscribers:
            write(f"  {subscriber.name:<14} {subscriber.endpoint_url:<36} {behaviour.behaviour}")
        write(
            self.style.SUCCESS(
                f"Fired {run.events} events: {run.deliveries} deliveries queued "
                "(other subscribers matching demo.* get them too)."
            )
        )
        if not _listening(receiver):
            write(
                self.style.WARNING(
                    f"Nothing answers at {receiver}: start the receiver with "
                    "`python manage.py demo_receiver --fail-rate 0.4 --slow-rate 0.1` "
                    "(make run does)."
                )
            )
        site = site.rstrip("/")
        write("Watch:")
        write(f"  dashboard      {site}/dashboard/")
        write(f"  deliveries     {site}/admin/deliveries/delivery/")
        write(f"  dead letters   {site}/admin/deadletters/deadletter/")
        write(f"  subscribers    {site}/admin/subscribers/subscriber/")
        write("  and the demo receiver's output, one line per request it verified.")
        write("Deliveries are sent by the cluster (python manage.py qcluster; make run starts it).")


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)), timeout=1
        ):
            return True
    except OSError:
        return False
