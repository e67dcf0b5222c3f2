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
    converters: tuple  # (column index, column expression, its converters), where there are any
    widths: tuple[int, ...]  # how many columns each of PARTS has


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
    return [_delivery(join, row, connection) for row in rows]


def _delivery(join: _Join, row: tuple, connection) -> Delivery:
    values = converted(row, join.converters, connection)
    db = connection.alias
    delivery_width, event_width, _ = join.widths
    delivery = Delivery.from_db(db, None, values[:delivery_width])
    event_end = delivery_width + event_width
    EVENT.set_cached_value(
        delivery, EVENT.related_model.from_db(db, None, values[delivery_width:event_end])
    )
    SUBSCRIBER.set_cached_value(delivery, Subscriber.from_db(db, None, values[event_end:]))
    return delivery


@functools.lru_cache(maxsize=32)  # per connection: each thread has its own
def _join(connection) -> _Join:
    quote = connection.ops.quote_name
    columns: list[str] = []
    expressions = []
    for model, alias in PARTS:
        for field in model._meta.concrete_fields:
            expressions.append(field.get_col(alias))
            columns.append(f"{alias}.{quote(field.column)}")
    tables = {alias: quote(model._meta.db_table) for model, alias in PARTS}
    select = (
        f"SELECT {', '.join(columns)} FROM {tables['d']} d "
        f"JOIN {tables['e']} e ON e.{quote(EVENT.target_field.column)} = d.{quote(EVENT.column)} "
        f"JOIN {tables['s']} s "
        f"ON s.{quote(SUBSCRIBER.target_field.column)} = d.{quote(SUBSCRIBER.column)}"
    )
    widths = tuple(len(model._meta.concrete_fields) for model, _ in PARTS)
    return _Join(
        select=select, converters=column_converters(expressions, connection), widths=widths
    )
