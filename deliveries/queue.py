"""Delivery-engine jobs in django-q2's queue, which lives in our own database.

Deliveries themselves are not jobs: the deliveries table is their queue (see
deliveries.dispatcher). What goes through django-q2 is the occasional job at an exact time, such
as an open circuit's probe. The ORM broker hands out rows whose `lock` is in the past, so a row
inserted with `lock = eta` runs at `eta` (to within the poll interval), where django-q2's
scheduler only ticks every 30 seconds. Enqueueing inside the caller's transaction makes the job
commit or roll back with the state change it serves.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

PROBE_TASK = "deliveries.tasks.probe"


class _EtaBroker(ORM):
    """Puts the signed job package into the queue table, invisible until `eta`."""

    def __init__(self, eta: datetime) -> None:
        super().__init__(list_key=Conf.CLUSTER_NAME)
        self.eta = eta

    def enqueue(self, task: str) -> int:
        return (
            OrmQ.objects.using(Conf.ORM).create(key=self.list_key, payload=task, lock=self.eta).pk
        )


def enqueue_probe(subscriber_id: UUID | str, *, eta: datetime) -> None:
    """A job that sends one held delivery as the probe of an open circuit, at `eta`."""
    # async_task builds and signs the package exactly as django-q2 expects it; the broker only
    # changes when the row becomes visible. Only the id travels: the job re-reads state.
    async_task(
        PROBE_TASK,
        str(subscriber_id),
        broker=_EtaBroker(eta),
        task_name=f"probe {subscriber_id}",
    )
