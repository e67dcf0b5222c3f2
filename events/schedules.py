"""The daily history prune, installed after every migrate (and test database flush)."""

from __future__ import annotations

from typing import Any

PRUNE_SCHEDULE_NAME = "herald: prune history"


def install_schedules(*, using: str = "default", **kwargs: Any) -> None:
    from django_q.models import Schedule

    # update_or_create keeps one row however often migrate runs, and repairs an edited one.
    Schedule.objects.using(using).update_or_create(
        name=PRUNE_SCHEDULE_NAME,
        defaults={
            "func": "events.tasks.prune_history",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
