"""Ingest that PostgreSQL aborts to break a deadlock is stored again, not refused."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest
from django.db import OperationalError, connections

from deliveries.models import Delivery
from events import services
from events.models import Event
from events.services import event_create
from tests.dberrors import wrapped
from tests.e2e import cluster


@pytest.mark.django_db(transaction=True)  # as in a request: no transaction around the ingest
def test_an_ingest_aborted_by_a_deadlock_is_stored_again(make_subscriber, monkeypatch, caplog):
    make_subscriber()
    store = services._events_store
    aborted = []

    def deadlocking_once(*args, **kwargs):
        if not aborted:
            aborted.append(True)
            raise wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))
        return store(*args, **kwargs)

    monkeypatch.setattr(services, "_events_store", deadlocking_once)

    with caplog.at_level(logging.WARNING, logger="events.services"):
        ingested = event_create(event_type="order.created", payload={"n": 1})

    assert ingested.created and ingested.delivery_count == 1
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1
    assert "ingest deadlocked with another transaction; storing again" in caplog.messages


@pytest.mark.django_db(transaction=True)
def test_an_ingest_that_keeps_deadlocking_gives_up(make_subscriber, monkeypatch):
    make_subscriber()

    def always_deadlocking(*args, **kwargs):
        raise wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(services, "_events_store", always_deadlocking)

    with pytest.raises(OperationalError):
        event_create(event_type="order.created", payload={"n": 1})


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("sqlite" in cluster.test_database_url(), reason="PostgreSQL's row locks")
def test_a_real_deadlock_with_an_operators_transaction_is_survived(make_subscriber, caplog):
    first, second = make_subscriber(name="first"), make_subscriber(name="second")
    stored = []

    def ingest() -> None:
        try:
            stored.append(event_create(event_type="order.created", payload={"n": 1}))
        finally:
            connections.close_all()

    # An operator's transaction locks the subscribers in the other order than the ingest's
    # foreign-key checks take them (first, then second): each ends up waiting for the other.
    with psycopg.connect(cluster.test_database_url()) as operator:
        operator.execute(LOCK, [second.pk])
        ingesting = threading.Thread(target=ingest)
        with caplog.at_level(logging.WARNING, logger="events.services"):
            ingesting.start()
            time.sleep(0.5)  # the ingest holds first's lock and waits for second's
            # Waits until PostgreSQL breaks the deadlock by aborting the ingest, which waited first.
            operator.execute(LOCK, [first.pk])
            operator.rollback()
            ingesting.join(timeout=30)

    assert "ingest deadlocked with another transaction; storing again" in caplog.messages
    (ingested,) = stored
    assert ingested.created and ingested.delivery_count == 2
    assert Event.objects.count() == 1 and Delivery.objects.count() == 2


LOCK = "SELECT 1 FROM subscribers_subscriber WHERE id = %s FOR UPDATE"
