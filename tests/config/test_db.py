"""config.db: many rows updated in one go (and which matched); hand-written SELECTs that read
rows back as the ORM would, on any backend; hot statements prepared on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.apikeys import api_key_create
from config.db import hot_cursor, select_instances, update_rows
from config.models import ApiKey
from deliveries.models import Delivery
from events.models import Event
from events.services import event_create

pytestmark = pytest.mark.django_db

# What an array literal must escape: quotes, backslashes, braces, commas, NULL as a word.
ODD_TEXT = 'it\'s a \\ {"odd", NULL} error'


@pytest.fixture
def deliveries(make_subscriber) -> list[Delivery]:
    for n in range(3):
        make_subscriber(name=f"receiver {n}")
    event_create(event_type="order.created", payload={})
    return list(Delivery.objects.order_by("subscriber_id"))


def test_each_row_updates_its_own_row_and_the_matches_are_reported(deliveries):
    now = timezone.now()
    first, second, third = deliveries
    Delivery.objects.filter(pk=second.pk).update(status=Delivery.Status.IN_FLIGHT)

    matched = update_rows(
        Delivery,
        set_fields=("status", "last_status_code", "next_attempt_at", "last_error"),
        where_fields=("id", "status"),
        rows=[
            (Delivery.Status.DELIVERED, 200, None, ODD_TEXT, third.pk, Delivery.Status.PENDING),
            (Delivery.Status.FAILED, None, now, "", second.pk, "pending"),
            (
                Delivery.Status.RETRYING,
                503,
                now + timedelta(seconds=5),
                "HTTP 503",
                first.pk,
                "pending",
            ),
        ],
    )

    assert matched == [0, 2]
    stored = {d.pk: d for d in Delivery.objects.all()}
    assert (stored[third.pk].status, stored[third.pk].last_status_code) == ("delivered", 200)
    assert stored[third.pk].next_attempt_at is None
    assert stored[third.pk].last_error == ODD_TEXT
    assert stored[second.pk].status == "in_flight"  # its condition did not hold
    assert stored[second.pk].last_error == ""
    assert (stored[first.pk].status, stored[first.pk].last_error) == ("retrying", "HTTP 503")
    assert stored[first.pk].next_attempt_at == now + timedelta(seconds=5)


def test_no_rows_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert update_rows(Delivery, set_fields=("status",), where_fields=("id",), rows=[]) == []


def test_select_instances_reads_every_field_as_the_orm_does():
    issued = api_key_create(name="billing", scopes=["read", "events:publish"]).api_key
    used = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=issued.pk).update(last_used_at=used)
    api_key_create(name="other")

    (found,) = select_instances(ApiKey, where="name = %s", params=["billing"])

    expected = ApiKey.objects.get(pk=issued.pk)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.scopes == ["read", "events:publish"]
    assert found.last_used_at == used and found.last_used_at.tzinfo is not None
    assert not found._state.adding  # saving it updates the row
    found.name = "billing-v2"
    found.save(update_fields=["name"])
    assert ApiKey.objects.get(pk=issued.pk).name == "billing-v2"


def test_select_instances_finds_nothing_without_a_match():
    assert select_instances(ApiKey, where="prefix = %s", params=["nope"]) == []


# --- prepared statements on the hot paths (PostgreSQL) ---------------------------------------


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def _publish_three() -> None:
    for n in range(3):
        event_create(event_type="order.created", payload={"order_id": n})


@pytest.fixture
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")


@pytest.mark.usefixtures("postgresql_only")
def test_the_ingest_statement_is_prepared_once_and_reused(make_subscriber):
    make_subscriber()

    _publish_three()

    ingest = [
        statement for statement in _prepared_statements() if "jsonb_to_recordset" in statement
    ]
    assert len(ingest) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = %s",
            [ingest[0]],
        )
        assert cursor.fetchone()[0] == 3


@pytest.mark.usefixtures("postgresql_only")
def test_prepared_statements_can_be_turned_off_for_poolers(settings, make_subscriber):
    settings.HERALD_PREPARED_STATEMENTS = False
    make_subscriber()

    _publish_three()

    assert Event.objects.count() == 3
    assert not [s for s in _prepared_statements() if "jsonb_to_recordset" in s]


def test_a_hot_statement_fails_with_djangos_errors_and_is_logged_like_the_orms():
    with (
        CaptureQueriesContext(connection) as captured,
        pytest.raises(IntegrityError),
        transaction.atomic(),
        hot_cursor() as cursor,
    ):
        cursor.execute("INSERT INTO config_apikey (name) VALUES (%s)", ["no prefix"])

    assert any(query["sql"].startswith("INSERT INTO config_apikey") for query in captured)


def test_values_passed_as_is_are_what_their_fields_would_have_prepared():
    from datetime import UTC, datetime
    from uuid import uuid4

    from config.db import _passed_as_is
    from deliveries.models import DeliveryAttempt
    from subscribers.models import Subscriber

    samples = [
        "text",
        "",
        0,
        7,
        True,
        False,
        1.5,
        datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        datetime(2026, 12, 2, 9, 0),  # naive: never as is
        uuid4(),
        Delivery.Status.DELIVERED,  # a str subclass: prepared
        {"a": 1},
    ]
    for model in (Delivery, DeliveryAttempt, Subscriber, Event):
        fields = tuple(f for f in model._meta.concrete_fields if not f.is_relation)
        for field, plain in zip(fields, _passed_as_is(fields, connections["default"]), strict=True):
            for value in samples:
                if type(value) not in plain or (
                    isinstance(value, datetime) and value.tzinfo is None
                ):
                    continue
                assert field.get_db_prep_save(value, connection) == value, (field, value)
                assert connection.vendor == "postgresql"


def test_nothing_is_passed_as_is_on_sqlite_or_for_relations():
    from config.db import _passed_as_is

    fields = tuple(Delivery._meta.concrete_fields)
    plain = dict(zip(fields, _passed_as_is(fields, connections["default"]), strict=True))

    assert plain[Delivery._meta.get_field("event")] == frozenset()
    if connection.vendor != "postgresql":
        assert all(not kinds for kinds in plain.values())
    else:
        assert plain[Delivery._meta.get_field("status")] == frozenset({str})
        assert plain[Delivery._meta.get_field("attempts_made")] == frozenset({int})


def test_connecting_to_postgresql_gives_up_after_ten_seconds():
    if connection.vendor != "postgresql":
        pytest.skip("a libpq connection parameter")
    assert connection.get_connection_params()["connect_timeout"] == 10
