"""Putting delivery jobs into django-q2's queue, which lives in our own database.

The ORM broker hands out rows whose `lock` is in the past, so a row inserted with `lock = eta`
becomes a job that runs at `eta` (to within the cluster's poll interval). That gives retries
second precision, where django-q2's scheduler only ticks every 30 seconds. Because the queue is a
table in the same database, enqueueing inside the caller's transaction makes the jobs commit or
roll back together with the deliveries they serve: the transaction is the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

DELIVER_TASK = "deliveries.tasks.deliver"
PROBE_TASK = "deliveries.tasks.probe"


class _EtaBroker(ORM):
    """Collects signed job packages, each invisible until its `eta`, to insert in one statement."""

    def __init__(self) -> None:
        super().__init__(list_key=Conf.CLUSTER_NAME)
        self.eta: datetime | None = None
        self.rows: list[OrmQ] = []

    def enqueue(self, task: str) -> None:
        self.rows.append(OrmQ(key=self.list_key, payload=task, lock=self.eta))

    def flush(self) -> None:
        OrmQ.objects.using(Conf.ORM).bulk_create(self.rows)
        self.rows = []


def enqueue_deliveries(delivery_ids: Iterable[UUID | str], *, eta: datetime) -> int:
    """One `deliver` job per delivery, due at `eta`. Call inside the transaction that made them."""
    return enqueue_delivery_jobs((delivery_id, eta) for delivery_id in delivery_ids)


def enqueue_delivery_jobs(jobs: Iterable[tuple[UUID | str, datetime]]) -> int:
    """One `deliver` job per (delivery id, eta) pair, inserted together."""
    return _enqueue(DELIVER_TASK, "deliver", jobs)


def enqueue_probe(subscriber_id: UUID | str, *, eta: datetime) -> None:
    """A job that sends one held delivery as the probe of an open circuit, at `eta`."""
    _enqueue(PROBE_TASK, "probe", [(subscriber_id, eta)])


def _enqueue(func: str, verb: str, jobs: Iterable[tuple[UUID | str, datetime]]) -> int:
    broker = _EtaBroker()
    for object_id, eta in jobs:
        broker.eta = eta
        # async_task builds and signs the package exactly as django-q2 expects it; the broker
        # only changes where and when the row lands. Only the id travels: the job re-reads state.
        async_task(func, str(object_id), broker=broker, task_name=f"{verb} {object_id}")
    count = len(broker.rows)
    broker.flush()
    return count
