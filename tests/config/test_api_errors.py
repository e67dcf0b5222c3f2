"""The API's exception handler: which errors become which answers."""

from __future__ import annotations

import psycopg
import pytest

from config.api.exceptions import api_exception_handler
from events import api as events_api
from events.models import Source
from subscribers.api import SubscriberViewSet
from subscribers.models import Subscriber
from tests.dberrors import wrapped


def test_a_row_of_the_views_model_deleted_meanwhile_is_a_404():
    response = api_exception_handler(Subscriber.DoesNotExist(), {"view": SubscriberViewSet()})

    assert response.status_code == 404
    assert response.data["error"]["code"] == "not_found"


def test_a_missing_row_of_another_model_is_left_to_answer_500():
    # Not a row the client asked for: a bug, which a 404 would hide.
    assert api_exception_handler(Source.DoesNotExist(), {"view": SubscriberViewSet()}) is None


@pytest.mark.django_db
def test_a_database_outage_is_a_503_to_retry_logged_in_one_line(api, monkeypatch, caplog):
    def database_down(**kwargs):
        raise wrapped(psycopg.OperationalError("connection failed: Connection refused"))

    monkeypatch.setattr(events_api, "event_create", database_down)

    response = api.post(
        "/api/v1/events", {"event_type": "order.created", "payload": {}}, format="json"
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"
    warnings = [r for r in caplog.records if r.name == "config.api.exceptions"]
    assert [r.getMessage() for r in warnings] == [
        "database unavailable: connection failed: Connection refused"
    ]
    assert not any(r.levelname == "ERROR" for r in caplog.records)


def test_a_statement_the_database_refused_is_not_an_outage():
    # A statement timeout (57014) or a constraint is about this request, not the database.
    refused = wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))

    assert api_exception_handler(refused, {"view": SubscriberViewSet()}) is None


def test_a_request_aborted_to_break_a_deadlock_is_a_503_to_retry():
    aborted = wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))

    response = api_exception_handler(aborted, {"view": SubscriberViewSet()})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["error"]["code"] == "retry"
