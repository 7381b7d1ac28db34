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
  ``DatabaseUnavailable``: a ``CircuitOpenError`` (so ``ResilienceMiddleware`` answers 503 with
  ``Retry-After``) and a Django ``OperationalError``. Its ``sent`` says whether a write (or COMMIT)
  may have been applied: the client's idempotency key decides. The connection is discarded, so the
  next request does not inherit it.

``retry_transaction`` re-runs a whole ``atomic`` block on serialization failure or deadlock, and
``ReplicaRouter`` sends reads to the first replica of the model's primary whose breaker is not open.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    connections,
    transaction,
)
from django.db.transaction import TransactionManagementError

from resilience.breakers.decorator import BreakerHandle, circuit_breaker
from resilience.conf import resilience_settings
from resilience.core.deadline import bounded, remaining
from resilience.exceptions import CircuitOpenError, DeadlineExceeded
from resilience.integrations.classifiers import postgres_connection_lost, postgres_transaction_conflict, sqlstate
from resilience.retries.policies import retry

T = TypeVar("T")
QUERY_CANCELED = "57014"
READ_PREFIXES = ("SELECT", "SHOW", "EXPLAIN", "VALUES")
NOT_THE_DATABASES_FAULT = (IntegrityError, ProgrammingError, DataError, NotSupportedError, TransactionManagementError)
_OPEN = ("open", "forced_open")


_breakers: dict[str, BreakerHandle] = {}


def breaker_for(alias: str) -> BreakerHandle:
    """The breaker of one database alias; errors of the statement itself do not count against it."""
    handle = _breakers.get(alias)
    if handle is None:
        handle = _breakers.setdefault(alias, circuit_breaker(f"postgres:{alias}", ignore=NOT_THE_DATABASES_FAULT))
    return handle


def is_read(sql: str) -> bool:
    head = sql.lstrip(" \t\n(").upper()
    return head.startswith(READ_PREFIXES) and " INTO " not in head


class DatabaseUnavailable(CircuitOpenError, OperationalError):
    """The database could not be reached, or the connection was lost and the statement could not be
    retried safely. ``ResilienceMiddleware`` answers 503 with ``Retry-After`` (it is a
    ``CircuitOpenError``); code that catches Django's ``DatabaseError``/``OperationalError`` still
    catches it. Unlike a plain ``CircuitOpenError``, the call may have run: ``sent`` is True when the
    statement (or a COMMIT) had been sent, so a write may have been applied — make writes that a
    client re-sends idempotent (an idempotency key)."""

    def __init__(self, alias: str, message: str, *, sent: bool) -> None:
        name = f"postgres:{alias}"
        wait = None
        try:
            breaker = breaker_for(alias)
            if breaker.state in _OPEN:
                wait = breaker.breaker.config.open_for
        except Exception:  # noqa: BLE001 - a Retry-After hint only
            wait = None
        CircuitOpenError.__init__(self, name, wait if wait is not None else 1.0, "unavailable")
        self.args = (f"database {alias!r} unavailable: {message}",)
        self.alias, self.sent = alias, sent


def _unavailable(db: Any, exc: BaseException, *, sent: bool) -> DatabaseUnavailable:
    return DatabaseUnavailable(db.alias, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, sent=sent)


def _lost(exc: BaseException) -> bool:
    return not isinstance(exc, DatabaseUnavailable) and postgres_connection_lost(exc)


# -- statement_timeout: what this library set, tracked on the psycopg connection itself, so that a
# pooled or persistent connection carries it to whichever thread or DatabaseWrapper uses it next.
_SESSION = "_resilience_session_timeout"  # a session-level statement_timeout of ours is in force
_LOCAL = "_resilience_local_timeout"  # a transaction-local one may be in force in this transaction


def _run_raw(db: Any, raw_cursor: Any, sql: str, params: Any = None) -> None:
    with db.wrap_database_errors:  # Django's error classes, and errors_occurred set on the wrapper
        raw_cursor.execute(sql, params)


def _set_statement_timeout(db: Any, raw_cursor: Any, seconds: float, local: bool) -> None:
    milliseconds = max(int(seconds * 1000), 1)
    _run_raw(db, raw_cursor, "SELECT set_config('statement_timeout', %s, %s)", (str(milliseconds), local))
    setattr(db.connection, _LOCAL if local else _SESSION, True)


def _clear_statement_timeout(db: Any, raw_cursor: Any, in_transaction: bool) -> None:
    """Before a statement without a deadline: no timeout of ours may remain in force."""
    raw = db.connection
    if in_transaction:
        if getattr(raw, _LOCAL, False):  # a session one is never in force inside a transaction
            _run_raw(db, raw_cursor, "SET LOCAL statement_timeout TO DEFAULT")
            setattr(raw, _LOCAL, False)
    elif getattr(raw, _SESSION, False):
        _run_raw(db, raw_cursor, "RESET statement_timeout")
        setattr(raw, _SESSION, False)


def reset_session_timeout(db: Any) -> None:
    """Called by the backend as autocommit is turned off: a transaction must not start under a
    session-level timeout of ours (a RESET inside it would be undone by a rollback)."""
    raw = db.connection
    if raw is not None and getattr(raw, _SESSION, False):
        with db.wrap_database_errors:
            raw.execute("RESET statement_timeout")
        setattr(raw, _SESSION, False)


def transaction_ended(db: Any, *, savepoint_rollback: bool = False) -> None:
    """A ROLLBACK TO SAVEPOINT may bring back a local timeout; COMMIT/ROLLBACK end every local one."""
    raw = db.connection
    if raw is not None:
        setattr(raw, _LOCAL, savepoint_rollback)


# -- a dead connection is found before anything is sent on it, and a statement is never left
# waiting on a network that black-holes past its deadline (the server's statement_timeout cannot
# help when no packet reaches it).
WATCHDOG_GRACE = 0.25  # the server's cancellation gets this long to arrive after the deadline


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


class _Watchdog:
    """One thread per process that shuts down the socket of a statement still waiting past its
    deadline (plus ``WATCHDOG_GRACE``); the statement then fails at once as a lost connection."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[list[Any]] = []
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()

    def arm(self, fd: int, seconds: float) -> list[Any]:
        entry = [time.monotonic() + seconds, next(self._seq), fd, False, True]  # at, seq, fd, fired, armed
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="resilience-pg-watchdog")
                self._thread.start()
            elif self._heap[0] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: list[Any]) -> bool:
        """Stop watching; True when the watchdog had already cut the connection."""
        with self._cond:  # the socket is never shut down after this returns (its fd may be reused)
            entry[4] = False
            return bool(entry[3])

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and not self._heap[0][4]:
                    heapq.heappop(self._heap)
                if not self._heap:
                    if not self._cond.wait(60):
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                entry[3], entry[4] = True, False
                try:
                    sock = socket.socket(fileno=os.dup(entry[2]))
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    finally:
                        sock.close()
                except OSError:
                    pass


_watchdog = _Watchdog()


def _socket(db: Any) -> int:
    with db.wrap_database_errors:  # a broken connection has no socket: a lost connection
        return int(db.connection.pgconn.socket)


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
        watch = _watchdog.arm(_socket(db), left + WATCHDOG_GRACE) if left is not None else None
        try:
            if left is not None:
                _set_statement_timeout(db, cursor_wrapper.cursor, left, local=in_transaction)
            else:
                _clear_statement_timeout(db, cursor_wrapper.cursor, in_transaction)
            progress["sent"] = True
            return execute(sql, params, many, context)
        except DatabaseError as exc:
            if watch is not None and _watchdog.disarm(watch):  # no answer at all: the network, not the query
                if by_deadline:
                    raise DeadlineExceeded("no answer from the database before the deadline") from exc
                raise _unavailable(db, exc, sent=progress["sent"]) from exc
            if sqlstate(exc) == QUERY_CANCELED and by_deadline:
                raise DeadlineExceeded("statement cancelled at the deadline") from exc
            raise
        finally:
            if watch is not None:
                _watchdog.disarm(watch)

    breaker = breaker_for(db.alias)

    def attempt() -> Any:
        if progress["reconnect"]:
            _reconnect(db, cursor_wrapper)
            progress["reconnect"] = False
        progress["sent"] = False
        try:
            return breaker.call(run)
        except DatabaseError as exc:
            if _lost(exc):
                progress["reconnect"] = True
                if progress["sent"] and not read:  # a write may have been applied: never run it again
                    raise _unavailable(db, exc, sent=True) from exc
            raise

    try:
        if in_transaction:
            return breaker.call(run)
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
        raise _unavailable(db, exc, sent=progress["sent"] and not read) from exc


def guarded_connect(connect: Callable[[Any], T], conn_params: dict[str, Any], alias: str) -> T:
    """Open a connection through the alias's breaker, retrying refusals, bounded by the deadline."""
    left = remaining()
    if left is not None:
        if left <= 0:
            raise DeadlineExceeded("deadline passed before connecting to the database")
        # libpq takes whole seconds (and treats 1 as 2); never wait longer than the deadline allows
        current = conn_params.get("connect_timeout")
        conn_params = {**conn_params, "connect_timeout": max(2, min(int(current or 10), int(left) + 1))}
    return retry("postgres_connect").call(breaker_for(alias).call, connect, conn_params)  # type: ignore[no-any-return]


class _Attempt:
    """One try of a transaction: ``atomic`` around the block; a conflict is kept for the retry loop."""

    def __init__(self, using: str | None) -> None:
        self.atomic = transaction.atomic(using=using)
        self.error: BaseException | None = None

    def __enter__(self) -> _Attempt:
        self.atomic.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            self.atomic.__exit__(exc_type, exc, tb)  # commits, or rolls back on any error
        except DatabaseError as commit_error:  # SERIALIZABLE conflicts often surface at COMMIT
            if exc is None and postgres_transaction_conflict(commit_error):
                self.error = commit_error
                return True
            raise
        if exc is not None and postgres_transaction_conflict(exc):
            self.error = exc
            return True
        return False


def transaction_attempts(using: str | None = None, policy: str = "postgres_transaction") -> Iterator[_Attempt]:
    """``for attempt in transaction_attempts(): with attempt: ...`` — re-runs the block on conflicts."""
    if connections[using or "default"].in_atomic_block:
        raise TransactionManagementError(
            "retry_transaction must be the outermost transaction: an inner block cannot be re-run alone"
        )
    retrying = retry(policy).retrying
    started, number, previous = time.monotonic(), 0, 0.0
    while True:
        number += 1
        attempt = _Attempt(using)
        yield attempt
        if attempt.error is None:
            return
        delay = retrying.next_delay(attempt.error, number, started, previous)
        if delay is None:
            raise attempt.error
        retrying.sleep(delay)
        previous = delay


def retry_transaction(
    fn: Callable[..., T] | None = None, *, using: str | None = None, policy: str = "postgres_transaction"
) -> Any:
    """Run ``fn`` in ``atomic``; on serialization failure or deadlock, roll back and run it again."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            for attempt in transaction_attempts(using, policy):
                with attempt:
                    result = func(*args, **kwargs)
            return result

        return wrapper

    return decorate(fn) if fn is not None else decorate


class ReplicaRouter:
    """``DATABASE_ROUTERS = ["resilience.integrations.postgres.ReplicaRouter"]`` with
    ``RESILIENCE["DATABASE_REPLICAS"] = {"default": ["replica1", "replica2"], "billing": ["billing_ro"]}``:
    reads go to the first replica of the model's primary whose breaker is not open, else to that
    primary; writes and migrations to the primary.

    A model's primary is, in order: the ``using`` hint; the alias of the ``instance`` hint
    (``instance._state.db``: an object loaded from a replica maps back to that replica's primary);
    else the first primary listed. An alias that is neither a primary nor a replica here is left
    to Django (or the next router)."""

    def _replicas(self) -> dict[str, list[str]]:
        return resilience_settings.DATABASE_REPLICAS  # type: ignore[no-any-return]

    def _primary(self, hints: dict[str, Any]) -> str | None:
        replicas = self._replicas()
        instance = hints.get("instance")
        alias = hints.get("using") or getattr(getattr(instance, "_state", None), "db", None)
        if alias:
            if alias in replicas:
                return str(alias)
            for primary, its_replicas in replicas.items():
                if alias in its_replicas:
                    return str(primary)
            return None
        return next(iter(replicas), None)

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        primary = self._primary(hints)
        if primary is None:
            return None
        for alias in self._replicas()[primary]:
            if breaker_for(alias).state not in _OPEN:
                return alias
        return primary

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._primary(hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if any(db in replicas for replicas in self._replicas().values()) else None
