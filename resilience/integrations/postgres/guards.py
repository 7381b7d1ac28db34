"""Postgres: every statement bounded by the deadline and guarded by a breaker per alias; safe retries.

Use the backend ``resilience.backends.postgresql`` (a thin subclass of Django's) for each alias to
protect. Then, for every statement on that alias:

- with a deadline, ``statement_timeout`` is set to the time left (transaction-local inside a
  transaction; session-level outside, and reset before the next statement without a deadline and
  before a transaction starts). What was set is tracked on the psycopg connection itself, so it
  never leaks through persistent or pooled connections, to another thread, or into a transaction.
  A statement cancelled by it raises ``DeadlineExceeded``; no statement starts once the deadline
  has passed. When no answer comes at all (a black-holed network: the server never sees the
  statement, so its timer cannot fire) the socket is shut down at the deadline plus
  ``WATCHDOG_GRACE`` and the statement raises ``DeadlineExceeded`` too;
- the breaker ``postgres:<alias>`` counts connection and timeout failures (not integrity or syntax
  errors) and so do new connections; from Django's psycopg pool, ``getconn`` waits no longer than
  the deadline, and a pool left waiting out its own reconnect backoff by an outage is replaced as
  soon as Postgres answers (``resilience.backends.postgresql.pool``);
- outside a transaction, a connection found dead before use (closed by its peer while idle: a
  poll of the socket, no round trip) is replaced before anything is sent, for reads and writes;
  a read whose connection was lost mid-statement is retried on a new connection; a write only if
  it was lost before the write itself was sent. Nothing inside ``atomic`` is retried statement by
  statement;
- a lost connection or an unreachable database that could not be retried safely raises
  ``resilience.exceptions.DatabaseUnavailable``: a ``CircuitOpenError`` (so ``ResilienceMiddleware`` answers 503 with
  ``Retry-After``) and a Django ``OperationalError``. Its ``sent`` says whether a write (or COMMIT)
  may have been applied: the client's idempotency key decides. The connection is discarded, so the
  next request does not inherit it.

``statement_timeout`` and the watchdog live in ``timeouts``, ``retry_transaction`` (a whole ``atomic``
block re-run on serialization failure or deadlock) in ``transactions``, ``ReplicaRouter`` in ``router``.
"""

from __future__ import annotations

import contextvars
import re
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import DatabaseError, DataError, IntegrityError, NotSupportedError, ProgrammingError
from django.db.transaction import TransactionManagementError

from resilience.breakers.decorator import BreakerHandle, circuit_breaker
from resilience.core.deadline import bounded, remaining
from resilience.exceptions import DatabaseUnavailable, DeadlineExceeded
from resilience.integrations.postgres.classifiers import postgres_connection_lost, sqlstate
from resilience.integrations.postgres.timeouts import (
    WATCHDOG_GRACE,
    clear_statement_timeout,
    set_statement_timeout,
    socket_of,
    watchdog,
)
from resilience.retries.policies import retry

T = TypeVar("T")
QUERY_CANCELED = "57014"
READ_PREFIXES = ("SELECT", "SHOW", "EXPLAIN", "VALUES")
NOT_THE_DATABASES_FAULT = (IntegrityError, ProgrammingError, DataError, NotSupportedError, TransactionManagementError)
OPEN = ("open", "forced_open")


_breakers: dict[str, BreakerHandle] = {}
_unguarded: contextvars.ContextVar[bool] = contextvars.ContextVar("resilience_postgres_unguarded", default=False)


@contextmanager
def unguarded() -> Iterator[None]:
    """The library's own bookkeeping (the breaker history's writes): its statements and connects skip
    the alias breakers, neither refused by them nor counted. Else forcing ``postgres:default`` open
    would refuse the very row that records it. Deadlines and safe retries still apply."""
    token = _unguarded.set(True)
    try:
        yield
    finally:
        _unguarded.reset(token)


def _direct(fn: Callable[[], T]) -> T:
    return fn()


def breaker_for(alias: str) -> BreakerHandle:
    """The breaker of one database alias; errors of the statement itself do not count against it."""
    handle = _breakers.get(alias)
    if handle is None:
        handle = _breakers.setdefault(alias, circuit_breaker(f"postgres:{alias}", ignore=NOT_THE_DATABASES_FAULT))
    return handle


_WRITES_ANYWAY = re.compile(r"\b(?:INTO|ANALYZE)\b")  # SELECT ... INTO makes a table; EXPLAIN ANALYZE runs its statement


def is_read(sql: str) -> bool:
    """A statement safe to send again: SELECT, SHOW, EXPLAIN or VALUES, without an ``INTO`` or an
    ``ANALYZE`` word anywhere (whatever whitespace surrounds it). A false "write" only costs a retry."""
    head = sql.lstrip(" \t\r\n(").upper()
    return head.startswith(READ_PREFIXES) and _WRITES_ANYWAY.search(head) is None


def unavailable(db: Any, exc: BaseException, *, sent: bool) -> DatabaseUnavailable:
    """The ``DatabaseUnavailable`` for ``exc`` on ``db``; its ``Retry-After`` is the alias breaker's
    ``open_for`` while that breaker is open, else one second."""
    wait = 1.0
    try:
        breaker = breaker_for(db.alias)
        if breaker.state in OPEN:
            wait = breaker.breaker.config.open_for
    except Exception:  # noqa: BLE001 - a Retry-After hint only
        pass
    text = str(exc).strip()
    return DatabaseUnavailable(db.alias, text.splitlines()[0] if text else type(exc).__name__, sent=sent, retry_after=wait)


def _lost(exc: BaseException) -> bool:
    return not isinstance(exc, DatabaseUnavailable) and postgres_connection_lost(exc)


def connection_dead(raw: Any) -> bool:
    """True when an idle psycopg connection is known broken, or its peer has closed it: found with a
    poll of the socket, no round trip."""
    from psycopg import pq

    if raw is None:
        return False
    try:
        if raw.closed:
            return True
        pgconn = raw.pgconn
        if select.select([pgconn.socket], [], [], 0)[0]:  # an idle connection has nothing to read...
            pgconn.consume_input()  # ...but an EOF, a reset, or a FATAL before the server closes it
            return bool(pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status == pq.TransactionStatus.UNKNOWN)
    except Exception:  # noqa: BLE001 - any failure to look at the socket means it cannot be used
        return True
    return False


def _reconnect(db: Any, cursor_wrapper: Any) -> None:
    """Replace a lost connection, and the raw cursor under the caller's cursor wrapper with it."""
    discard(db)
    db.ensure_connection()  # the backend raises DatabaseUnavailable (never retried) when it cannot
    cursor_wrapper.cursor = db.create_cursor()


def discard(db: Any) -> None:
    """Close a broken connection (back to the pool, which drops it) without raising."""
    try:
        db.close()
    except Exception:  # noqa: BLE001 - it is broken already; Django forgets it either way
        pass
    if not db.in_atomic_block:
        db.connection = None


def statement_guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Django execute wrapper installed by the backend (see the module docstring)."""
    db, cursor_wrapper = context["connection"], context["cursor"]
    if remaining() == 0.0:
        raise DeadlineExceeded("deadline passed before the statement was sent")
    in_transaction = db.in_atomic_block or not db.get_autocommit()
    attempt_timeout = retry("postgres").retrying.policy.attempt_timeout  # per statement, within the deadline
    read = not many and is_read(sql)
    progress = {"sent": False, "reconnect": False}

    def run() -> Any:
        deadline_left = remaining()
        left = bounded(attempt_timeout)
        # the server's timer (whole milliseconds) may fire a hair before the local deadline: so a
        # cancellation counts as the deadline's whenever the timeout we set came from the deadline
        by_deadline = deadline_left is not None and (attempt_timeout is None or deadline_left <= attempt_timeout)
        watch = watchdog.arm(socket_of(db), left + WATCHDOG_GRACE) if left is not None else None
        try:
            if left is not None:
                set_statement_timeout(db, cursor_wrapper.cursor, left, local=in_transaction)
            else:
                clear_statement_timeout(db, cursor_wrapper.cursor, in_transaction)
            progress["sent"] = True
            return execute(sql, params, many, context)
        except DatabaseError as exc:
            if watch is not None and watchdog.disarm(watch):  # no answer at all: the network, not the query
                if by_deadline:
                    raise DeadlineExceeded("no answer from the database before the deadline") from exc
                raise unavailable(db, exc, sent=progress["sent"]) from exc
            if sqlstate(exc) == QUERY_CANCELED and by_deadline:
                raise DeadlineExceeded("statement cancelled at the deadline") from exc
            raise
        finally:
            if watch is not None:
                watchdog.disarm(watch)

    guarded = _direct if _unguarded.get() else breaker_for(db.alias).call

    def attempt() -> Any:
        if progress["reconnect"]:
            _reconnect(db, cursor_wrapper)
            progress["reconnect"] = False
        progress["sent"] = False
        try:
            return guarded(run)
        except DatabaseError as exc:
            if _lost(exc):
                progress["reconnect"] = True
                if progress["sent"] and not read:  # a write may have been applied: never run it again
                    raise unavailable(db, exc, sent=True) from exc
            raise

    try:
        if in_transaction:
            return guarded(run)
        # outside a transaction: a read is retried on a new connection when its connection was
        # lost; a write only when it was lost before the write was sent (during set_config)
        return retry("postgres").call(attempt)
    except DatabaseUnavailable:
        if not in_transaction:
            discard(db)
        raise
    except DatabaseError as exc:
        if not _lost(exc):
            raise
        if in_transaction:
            db.errors_occurred = True  # atomic's exit rolls back (it fails) and closes the connection
        else:
            discard(db)
        raise unavailable(db, exc, sent=progress["sent"] and not read) from exc


@contextmanager
def bound_unwrapped(db: Any, raw_cursor: Any) -> Iterator[None]:
    """Around a call Django's execute wrappers never see (``callproc``, ``COPY``): the deadline's
    ``statement_timeout`` (none of ours left from an earlier statement on this connection when there
    is no deadline), and its cancellation raised as ``DeadlineExceeded``, as for any statement."""
    in_transaction = db.in_atomic_block or not db.get_autocommit()
    left = remaining()
    if left is None:
        clear_statement_timeout(db, raw_cursor, in_transaction)
        yield
        return
    if left <= 0:
        raise DeadlineExceeded("deadline passed before the statement was sent")
    set_statement_timeout(db, raw_cursor, left, local=in_transaction)
    try:
        yield
    except Exception as exc:
        if sqlstate(exc) == QUERY_CANCELED:
            raise DeadlineExceeded("statement cancelled at the deadline") from exc
        raise


def guarded_connect(connect: Callable[[Any], T], conn_params: dict[str, Any], alias: str) -> T:
    """Open a connection through the alias's breaker, retrying refusals, bounded by the deadline."""
    left = remaining()
    if left is not None:
        if left <= 0:
            raise DeadlineExceeded("deadline passed before connecting to the database")
        # libpq takes whole seconds (and treats 1 as 2); never wait longer than the deadline allows
        current = conn_params.get("connect_timeout")
        conn_params = {**conn_params, "connect_timeout": max(2, min(int(current or 10), int(left) + 1))}
    if _unguarded.get():
        return retry("postgres_connect").call(connect, conn_params)  # type: ignore[no-any-return]
    return retry("postgres_connect").call(breaker_for(alias).call, connect, conn_params)  # type: ignore[no-any-return]
