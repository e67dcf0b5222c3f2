from __future__ import annotations

import argparse
import uuid
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deadletters.models import DeadLetter
from deadletters.selectors import dead_letters_matching
from deadletters.services import dead_letters_replay
from subscribers.matching import is_valid_pattern


class Command(BaseCommand):
    help = (
        "Replay unresolved dead letters: each delivery gets a fresh set of attempts with the same "
        "webhook-id. Select by ids, subscriber, event-type pattern and age."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("ids", nargs="*", type=_uuid, help="Dead letter ids (default: all).")
        parser.add_argument("--subscriber", type=_uuid, help="Only this subscriber's.")
        parser.add_argument("--event-type", help="An event type or pattern, e.g. 'order.*'.")
        parser.add_argument("--since", type=_datetime, help="Only dead since (ISO 8601).")
        parser.add_argument("--limit", type=int, help="Replay at most this many (oldest first).")
        parser.add_argument("--dry-run", action="store_true", help="List, change nothing.")

    def handle(self, *args, ids, subscriber, event_type, since, limit, dry_run, **options) -> None:
        if event_type and not is_valid_pattern(event_type):
            raise CommandError(
                f"--event-type {event_type!r} is not a type or pattern like 'order.*'"
            )
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        selected = dead_letters_matching(
            ids=[str(i) for i in ids],
            subscriber_id=str(subscriber) if subscriber else None,
            event_type_pattern=event_type,
            since=since,
        ).select_related("delivery__event", "delivery__subscriber")
        letters = list(selected[:limit] if limit else selected)
        refused = self._report_ids_left_out(ids, letters)
        verb = "Would replay" if dry_run else "Replaying"
        for letter in letters:
            self.stdout.write(
                f"{verb} {letter.pk}: event {letter.delivery.event_id} "
                f"({letter.delivery.event.event_type}) to {letter.delivery.subscriber.name} "
                f"— {letter.reason}"
            )
        if dry_run:
            self.stdout.write(f"Dry run: {len(letters)} dead letter(s) would be replayed.")
            self._fail_if(refused)
            return
        outcome = dead_letters_replay(
            dead_letters=DeadLetter.objects.filter(pk__in=[letter.pk for letter in letters]),
            now=timezone.now(),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Replayed {outcome.done} dead letter(s); {outcome.skipped} skipped "
                "(resolved meanwhile)."
            )
        )
        self._fail_if(refused)

    def _report_ids_left_out(self, ids: list[uuid.UUID], letters: list[DeadLetter]) -> int:
        """Say why each id asked for is not replayed; how many cannot be (unknown, resolved)."""
        selected = {letter.pk for letter in letters}
        left_out = [i for i in dict.fromkeys(ids) if i not in selected]
        known = DeadLetter.objects.in_bulk(left_out)
        refused = 0
        for dead_letter_id in left_out:
            letter = known.get(dead_letter_id)
            if letter is None:
                why = "no dead letter has this id"
            elif letter.resolved_at is not None:
                when = letter.resolved_at.isoformat(timespec="seconds")
                why = f"already resolved ({letter.resolution or 'resolved'} at {when})"
            else:
                self.stderr.write(
                    f"Left out {dead_letter_id}: not selected by --subscriber, "
                    "--event-type, --since or --limit."
                )
                continue
            refused += 1
            self.stderr.write(f"Cannot replay {dead_letter_id}: {why}.")
        return refused

    def _fail_if(self, refused: int) -> None:
        if refused:
            raise CommandError(f"{refused} of the ids given cannot be replayed (see above).")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from exc


def _datetime(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date-time")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
