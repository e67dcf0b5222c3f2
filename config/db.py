"""Row-by-row UPDATEs sent as one pipelined batch, for writes that differ per row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def update_rows(
    model: type[Model],
    *,
    set_fields: Sequence[str],
    where_fields: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """`UPDATE model SET set_fields WHERE where_fields` once per row, with executemany.

    Each row holds the values of `set_fields` then of `where_fields`. psycopg pipelines
    executemany, so a thousand rows cost about one round trip. `bulk_update` would build one CASE
    per field over every row instead, which PostgreSQL evaluates in quadratic time.
    """
    fields = [model._meta.get_field(name) for name in (*set_fields, *where_fields)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields[: len(set_fields)])
    conditions = " AND ".join(f"{quote(field.column)} = %s" for field in fields[len(set_fields) :])
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {conditions}"
    params = [
        [
            field.get_db_prep_save(value, connection)
            for field, value in zip(fields, row, strict=True)
        ]
        for row in rows
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
