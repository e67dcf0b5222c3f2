from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from events.retention import BATCH_SIZE, history_prune


class Command(BaseCommand):
    help = (
        "Delete events older than DAYS whose deliveries are all finished, with their deliveries, "
        "attempts and resolved dead letters, in batches. Undelivered work and unresolved dead "
        "letters are kept. Also runs daily (HERALD_RETENTION_DAYS)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=settings.HERALD_RETENTION_DAYS,
            metavar="DAYS",
            help="Age in days beyond which finished history goes (default: "
            "HERALD_RETENTION_DAYS, %(default)s).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help="Events per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; delete nothing."
        )

    def handle(self, *args, older_than: float, batch_size: int, dry_run: bool, **options) -> None:
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        cutoff = timezone.now() - timedelta(days=older_than)
        pruned = history_prune(older_than=cutoff, batch_size=batch_size, dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {pruned.events} event(s), {pruned.deliveries} delivery(ies), "
            f"{pruned.attempts} attempt(s) and {pruned.dead_letters} resolved dead letter(s) "
            f"older than {cutoff.isoformat()}; kept {pruned.kept} old event(s) with work pending "
            "or an unresolved dead letter."
        )
