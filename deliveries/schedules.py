"""The recurring jobs Herald needs, installed after every migrate (and test database flush)."""

from __future__ import annotations

from typing import Any

SWEEP_SCHEDULE_NAME = "herald: sweep deliveries"


def install_schedules(*, using: str = "default", **kwargs: Any) -> None:
    from django_q.models import Schedule

    # update_or_create keeps one row however often migrate runs, and repairs an edited one.
    Schedule.objects.using(using).update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": "deliveries.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
