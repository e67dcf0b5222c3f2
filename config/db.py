"""Database helpers: many rows updated at once, hot-path SELECTs, and counts that stay cheap."""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Field, Model, QuerySet

M = TypeVar("M", bound=Model)


def update_rows(
    model: type[Model],
    *,
    set_fields: Sequence[str],
    where_fields: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> list[int]:
    """`UPDATE model SET set_fields WHERE where_fields` for each row; returns the positions in
    `rows` of those that matched.

    Each row holds the values of `set_fields` then of `where_fields`. On PostgreSQL this is one
    statement, `UPDATE ... FROM unnest(<an array per field>)`, parsed and planned once for any
    number of rows; RETURNING tells which matched. Elsewhere (SQLite, in process, where a
    statement costs no round trip) it is one statement per row, and its row count tells.
    `bulk_update` would build one CASE per field over every row instead, which PostgreSQL
    evaluates in quadratic time.
    """
    rows = list(rows)
    if not rows:
        return []
    # This thread's connection itself: through the proxy, every field's value preparation
    # would look it up again, which cost more than the preparation.
    connection = connections[DEFAULT_DB_ALIAS]
    fields, sql = _update_statement(model, tuple(set_fields), tuple(where_fields), connection)
    as_is = _passed_as_is(tuple(fields), connection)
    params = [
        [
            value
            if value is None or (type(value) in plain and _not_naive(value))
            else field.get_db_prep_save(value, connection)
            for field, plain, value in zip(fields, as_is, row, strict=True)
        ]
        for row in rows
    ]
    with hot_cursor(connection) as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, [list(column) for column in zip(*params, strict=True)])
            return sorted(position - 1 for (position,) in cursor.fetchall())
        matched = []
        for position, values in enumerate(params):
            cursor.execute(sql, values)
            if cursor.rowcount:
                matched.append(position)
        return matched


def _not_naive(value: Any) -> bool:
    return type(value) is not datetime or value.tzinfo is not None


@functools.lru_cache(maxsize=64)
def _passed_as_is(fields: tuple[Field, ...], connection) -> tuple[frozenset, ...]:
    """Per field, the exact types whose values the field's preparation returns unchanged.

    Preparing each value through its field was a sixth of recording a batch of outcomes, and for
    these it is the identity on PostgreSQL (naive datetimes excepted, see `_not_naive`): strings for
    text, ints, floats and booleans for their fields, aware datetimes, UUIDs for native UUIDs.
    Anything else, subclasses such as a model's TextChoices included, is prepared as before.
    Elsewhere (SQLite stores datetimes and UUIDs as text) every value is prepared.
    """
    if connection.vendor != "postgresql":
        return tuple(frozenset() for _ in fields)
    kinds = (
        ((models.CharField, models.TextField), str),
        ((models.BooleanField,), bool),
        ((models.IntegerField,), int),
        ((models.FloatField,), float),
        ((models.DateTimeField,), datetime),
        ((models.UUIDField,), uuid.UUID),
    )
    found = []
    for field in fields:
        plain = {kind for classes, kind in kinds if type(field) in _family(classes)}
        found.append(frozenset(plain))
    return tuple(found)


def _family(classes: tuple[type, ...]) -> set[type]:
    """The classes and Django's own subclasses of them (PositiveIntegerField, ...), not ours nor
    third parties', whose preparation may differ."""
    family = set()
    stack = list(classes)
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("django.db.models.fields"):
            family.add(cls)
            stack.extend(cls.__subclasses__())
    return family


@functools.lru_cache(maxsize=64)  # the statement for each caller, per connection (thread)
def _update_statement(
    model: type[Model], set_fields: tuple, where_fields: tuple, connection
) -> tuple[list[Field], str]:
    fields = [model._meta.get_field(name) for name in (*set_fields, *where_fields)]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    set_columns = [quote(field.column) for field in fields[: len(set_fields)]]
    where_columns = [quote(field.column) for field in fields[len(set_fields) :]]
    if connection.vendor != "postgresql":
        assignments = ", ".join(f"{column} = %s" for column in set_columns)
        conditions = " AND ".join(f"{column} = %s" for column in where_columns)
        return fields, f"UPDATE {table} SET {assignments} WHERE {conditions}"
    # v's columns are numbered: a field may be both set and matched (a status moving on).
    values = [f"v.c{n}" for n in range(len(fields))]
    assignments = ", ".join(
        f"{column} = {value}"
        for column, value in zip(set_columns, values[: len(set_columns)], strict=True)
    )
    conditions = " AND ".join(
        f"t.{column} = {value}"
        for column, value in zip(where_columns, values[len(set_columns) :], strict=True)
    )
    arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in fields)
    return fields, (
        f"UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS v({', '.join(f'c{n}' for n in range(len(fields)))}, position) "
        f"WHERE {conditions} RETURNING v.position"
    )


class PreparedCursor:
    """Runs statements that PostgreSQL parses and plans once per connection, then reuses.

    Django's psycopg cursors bind parameters on the client, which rules out prepared
    statements, so PostgreSQL parses and plans every statement it is sent. For the hot paths'
    long statements (ingest, claims, outcomes) that was most of the server's work: the
    single-event ingest statement cost 1.5 ms of PostgreSQL CPU unprepared and 0.8 ms prepared.
    Errors come out as Django's, and statements are logged in `connection.queries` like the
    ORM's. HERALD_PREPARED_STATEMENTS=false sends every statement unprepared (for a pgbouncer in
    transaction pooling mode that cannot keep prepared statements).
    """

    def __init__(self, connection) -> None:
        import psycopg  # only PostgreSQL connections get here

        self._db = connection
        connection.ensure_connection()
        self._cursor = psycopg.Cursor(connection.connection)
        self._prepare = settings.HERALD_PREPARED_STATEMENTS
        if connection.timezone_name == "UTC":
            # Django loads timestamptz through a Python subclass of psycopg's loader (to set
            # the connection's time zone), which parses each value in Python: a tenth of a
            # claim's CPU. In a UTC session psycopg's own loader, in C, gives the same values.
            self._cursor.adapters.register_loader("timestamptz", _native_timestamptz_loader())

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        self._db.validate_no_broken_transaction()
        started = time.monotonic()
        try:
            with self._db.wrap_database_errors:
                self._cursor.execute(sql, params, prepare=self._prepare)
        finally:
            if self._db.queries_logged:  # failed statements too, as Django's debug cursor does
                self._db.queries_log.append(
                    {"sql": f"{sql} -- {params!r}", "time": f"{time.monotonic() - started:.3f}"}
                )

    def fetchone(self) -> tuple | None:
        with self._db.wrap_database_errors:
            return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        with self._db.wrap_database_errors:
            return self._cursor.fetchall()

    def close(self) -> None:
        self._cursor.close()


@functools.cache
def _native_timestamptz_loader() -> type:
    import psycopg
    from psycopg.pq import Format

    oid = psycopg.postgres.types["timestamptz"].oid
    return psycopg.postgres.adapters.get_loader(oid, Format.TEXT)


@contextlib.contextmanager
def hot_cursor(connection=None) -> Iterator[Any]:
    """A cursor for a statement on a hot path: prepared on PostgreSQL (see PreparedCursor), the
    ordinary cursor elsewhere. Placeholders are the ones both take: %s and %(name)s.
    """
    connection = connection or connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    cursor = PreparedCursor(connection)
    try:
        yield cursor
    finally:
        cursor.close()


def select_instances(model: type[M], *, where: str, params: Sequence[Any]) -> list[M]:
    """Instances of `model` from `SELECT <every column> FROM <its table> WHERE <where>`.

    For queries on a hot path: the SQL is written once, and rows become instances without the
    ORM compiling a query or a raw queryset mapping columns on every call (a third of the CPU of
    the ORM's way).
    """
    connection = connections[DEFAULT_DB_ALIAS]  # this thread's, looked up once
    sql, attnames, converters = _select_plan(model, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} WHERE {where}", params)
        rows = cursor.fetchall()
    return [
        model.from_db(connection.alias, attnames, converted(row, converters, connection))
        for row in rows
    ]


@functools.lru_cache(maxsize=64)  # per model, per connection (thread)
def _select_plan(model: type[Model], connection) -> tuple[str, list[str], tuple]:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    table = model._meta.db_table
    sql = f"SELECT {', '.join(quote(field.column) for field in fields)} FROM {quote(table)}"
    columns = [field.get_col(table) for field in fields]
    return sql, [field.attname for field in fields], column_converters(columns, connection)


def column_converters(columns: Sequence[Any], connection) -> tuple:
    """`(index, column, converters)` for each selected column whose value the ORM converts.

    Rows read by hand pass through these (see `converted`) to read exactly as the ORM reads
    them: JSON decoded, and datetimes aware on SQLite, which stores them as text.
    """
    found = []
    for index, column in enumerate(columns):
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            found.append((index, column, tuple(converters)))
    return tuple(found)


def converted(row: Sequence[Any], converters: tuple, connection) -> list[Any]:
    values = list(row)
    for index, column, steps in converters:
        value = values[index]
        for convert in steps:
            value = convert(value, column, connection)
        values[index] = value
    return values


def bounded_count(queryset: QuerySet, *, cap: int) -> tuple[int, bool]:
    """How many rows, reading at most `cap` of them: `(count, exact)`.

    Past the cap the count is PostgreSQL's planner estimate (from table statistics, no rows
    read), never less than the cap. A metric scraped every few seconds must cost the same on a
    table of a thousand rows and one of a billion; an estimate is the honest price of that.
    """
    counted = queryset.order_by()[:cap].count()
    if counted < cap:
        return counted, True
    return max(cap, planner_estimate(queryset)), False


def planner_estimate(queryset: QuerySet) -> int:
    """The planner's row estimate for a query (PostgreSQL); an exact count elsewhere (SQLite)."""
    db = connections[queryset.db]
    if db.vendor != "postgresql":
        return queryset.count()
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def rows_ever_inserted(model: type[Model]) -> int:
    """Rows ever inserted into a model's table: a counter that deletions do not lower.

    On PostgreSQL it is the table's cumulative statistics (`n_tup_ins`): free to read, up to a
    few seconds behind, and reset only with the server's statistics (a Prometheus counter reset).
    Elsewhere (SQLite, development) it is the current row count.
    """
    db = connections["default"]
    if db.vendor != "postgresql":
        return model.objects.count()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_ins FROM pg_stat_user_tables "
            "WHERE relname = %s AND schemaname = current_schema()",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
