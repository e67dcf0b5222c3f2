"""What a database error means for the request that met it: the database is away, the request
lost a race it may simply run again, or neither (a bug's, or the statement's own)."""

from __future__ import annotations

from django import db

# SQLSTATEs of a connection lost or refused: class 08, and the server shutting down or starting.
_CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")
# Deadlock detected, serialization failure: PostgreSQL aborted this transaction to let another
# finish; run again, it succeeds.
_RUN_AGAIN = ("40P01", "40001")


def _sqlstate(exc: Exception) -> str | None:
    # Django wraps the driver's error; psycopg's carries the SQLSTATE, and a connection that
    # failed or broke has none. SQLite's errors have no such attribute at all.
    return getattr(exc.__cause__, "sqlstate", "not psycopg")


def is_connection_lost(exc: Exception) -> bool:
    """The connection to the database failed or was lost: PostgreSQL down, restarting, or out
    of reach, as opposed to a statement it refused."""
    if isinstance(exc, db.InterfaceError):
        return True
    if not isinstance(exc, db.OperationalError):
        return False
    sqlstate = _sqlstate(exc)
    return sqlstate is None or str(sqlstate).startswith(_CONNECTION_LOST)


def is_deadlock(exc: Exception) -> bool:
    """PostgreSQL aborted the transaction for another's sake: nothing of it was stored."""
    return isinstance(exc, db.OperationalError) and _sqlstate(exc) in _RUN_AGAIN
