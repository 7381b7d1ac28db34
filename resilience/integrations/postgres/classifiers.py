"""What is safe to retry against Postgres: classifiers by SQLSTATE, also through Django's wrapping.

The adapter adds what only it knows (is the statement a read, is it inside a transaction).
psycopg is imported when a classifier first runs, never when this module is imported.
"""

from __future__ import annotations

from django.db import Error as DjangoDbError

from resilience.integrations.extras import optional

# Postgres SQLSTATEs: connection exceptions (class 08), server shutting down or starting up.
PG_CONNECTION_LOST = frozenset({"57P01", "57P02", "57P03"})
PG_TOO_MANY_CONNECTIONS = "53300"  # safe only before any statement ran (at connect)
PG_TRANSACTION_CONFLICT = frozenset({"40001", "40P01"})  # serialization failure, deadlock: re-run the whole transaction


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when Django wrapped it (``__cause__``)."""
    for err in (exc, exc.__cause__):
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _is_db_error(exc: BaseException) -> bool:
    """A psycopg error, or Django's wrapping of one; False when psycopg is not installed."""
    psycopg = optional("psycopg")
    return psycopg is not None and isinstance(exc, (psycopg.Error, DjangoDbError))


def postgres_connection_lost(exc: BaseException) -> bool:
    """The connection broke or the server is restarting: nothing of the statement can have committed
    on its own, so a read outside a transaction may run again on a new connection."""
    if not _is_db_error(exc):
        return False
    code = sqlstate(exc)
    if code is None:  # psycopg raises OperationalError without a code when the socket dies
        import psycopg

        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        return isinstance(cause, psycopg.OperationalError) and not isinstance(cause, psycopg.errors.QueryCanceled)
    return code.startswith("08") or code in PG_CONNECTION_LOST


def postgres_connect_refused(exc: BaseException) -> bool:
    """Connection lost, or too many connections (only meaningful when raised while connecting)."""
    return postgres_connection_lost(exc) or (_is_db_error(exc) and sqlstate(exc) == PG_TOO_MANY_CONNECTIONS)


def postgres_transaction_conflict(exc: BaseException) -> bool:
    """Serialization failure or deadlock: retry by re-running the whole transaction, never one statement."""
    return _is_db_error(exc) and sqlstate(exc) in PG_TRANSACTION_CONFLICT
