"""Database errors as Django raises them: psycopg's error, wrapped, with the original as cause."""

from __future__ import annotations

import psycopg
from django.db import OperationalError


def wrapped(error: psycopg.Error) -> OperationalError:
    """`error` as Django's database layer hands it to the code above it."""
    try:
        try:
            raise error
        except psycopg.Error as exc:
            raise OperationalError(*exc.args) from exc
    except OperationalError as django_error:
        return django_error
