"""Deliveries locked for a claim, read with their event and subscriber in one statement.

This runs on every dispatcher cycle. Locking ids with one query, then loading them with the ORM
(`select_related`) cost a second round trip and more CPU compiling the query and building the
instances than the database spent answering: it was the largest part of a claim. Here the SQL
is written once per connection and the rows become model instances directly (`Model.from_db`),
their values passed through the same database converters the ORM applies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from config.db import column_converters, converted, hot_cursor
from deliveries.models import Delivery
from subscribers.models import Subscriber

# Through the foreign key, as the engine reaches events everywhere (it never imports the app).
EVENT = Delivery._meta.get_field("event")
SUBSCRIBER = Delivery._meta.get_field("subscriber")
# What each row holds, in order; conditions and ordering refer to the delivery as `d`.
PARTS = ((Delivery, "d"), (EVENT.related_model, "e"), (Subscriber, "s"))


@dataclass(frozen=True)
class _Join:
    select: str  # SELECT every column of the three FROM the delivery JOIN its event and subscriber
    # Per part of PARTS: (column index within the part, column expression, its converters)
    converters: tuple[tuple, ...]
    spans: tuple[tuple[int, int], ...]  # per part, where its columns are in a row


def lock_deliveries(
    *, condition: str, order_by: str, params: Sequence[Any], limit: int
) -> list[Delivery]:
    """Up to `limit` deliveries matching `condition` that no other worker holds, locked until
    commit, each with its event and subscriber already loaded.

    `condition` and `order_by` are SQL on the delivery's columns, qualified as `d.`. Only the
    delivery rows are locked: a subscriber row held by another transaction (a rate-limit slot,
    an outcome) must not hide that subscriber's deliveries.
    """
    connection = connections[DEFAULT_DB_ALIAS]  # this thread's
    join = _join(connection)
    features = connection.features
    lock = " FOR UPDATE OF d SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
    sql = f"{join.select} WHERE {condition} ORDER BY {order_by} LIMIT %s{lock}"
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, [*params, limit])
        rows = cursor.fetchall()
    # A batch holds many deliveries of one subscriber (and, fanned out, of one event): each is
    # built once and shared, as one query with select_related would not, which saves decoding
    # its JSON and building a 23-field instance for every row. Nothing here changes them.
    built: dict[tuple[int, Any], Any] = {}
    return [_delivery(join, row, connection, built) for row in rows]


def _delivery(join: _Join, row: tuple, connection, built: dict) -> Delivery:
    db = connection.alias
    (delivery_start, delivery_end), event_span, subscriber_span = join.spans
    delivery = Delivery.from_db(
        db, None, converted(row[delivery_start:delivery_end], join.converters[0], connection)
    )
    for descriptor, model, (start, end), converters in (
        (EVENT, EVENT.related_model, event_span, join.converters[1]),
        (SUBSCRIBER, Subscriber, subscriber_span, join.converters[2]),
    ):
        key = (start, row[start])  # the part's primary key, its first column
        instance = built.get(key)
        if instance is None:
            instance = model.from_db(db, None, converted(row[start:end], converters, connection))
            built[key] = instance
        descriptor.set_cached_value(delivery, instance)
    return delivery


@functools.lru_cache(maxsize=32)  # per connection: each thread has its own
def _join(connection) -> _Join:
    quote = connection.ops.quote_name
    columns: list[str] = []
    converters = []
    spans = []
    for model, alias in PARTS:
        fields = model._meta.concrete_fields
        assert fields[0].primary_key  # what _delivery shares parts by
        spans.append((len(columns), len(columns) + len(fields)))
        columns.extend(f"{alias}.{quote(field.column)}" for field in fields)
        converters.append(column_converters([field.get_col(alias) for field in fields], connection))
    tables = {alias: quote(model._meta.db_table) for model, alias in PARTS}
    select = (
        f"SELECT {', '.join(columns)} FROM {tables['d']} d "
        f"JOIN {tables['e']} e ON e.{quote(EVENT.target_field.column)} = d.{quote(EVENT.column)} "
        f"JOIN {tables['s']} s "
        f"ON s.{quote(SUBSCRIBER.target_field.column)} = d.{quote(SUBSCRIBER.column)}"
    )
    return _Join(select=select, converters=tuple(converters), spans=tuple(spans))
