"""Postgres: every statement bounded by the deadline and guarded by a breaker per alias; safe retries.

Use the backend ``resilience.backends.postgresql`` (a thin subclass of Django's) for each alias to
protect. Then, for every statement on that alias:

- with a deadline, ``statement_timeout`` is set to the time left (``SET LOCAL`` semantics inside a
  transaction, session-level outside and reset afterwards), and a statement cancelled by it raises
  ``DeadlineExceeded``; no statement starts once the deadline has passed;
- the breaker ``postgres:<alias>`` counts connection and timeout failures (not integrity or syntax
  errors) and so do new connections;
- a read (SELECT/SHOW/EXPLAIN/VALUES) outside any transaction is retried on a new connection when the
  connection was lost; nothing inside ``atomic`` and no write is ever retried statement by statement.

``retry_transaction`` re-runs a whole ``atomic`` block on serialization failure or deadlock, and
``ReplicaRouter`` sends reads to the first replica whose breaker is not open.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import DatabaseError, DataError, IntegrityError, NotSupportedError, ProgrammingError, connections, transaction
from django.db.transaction import TransactionManagementError

from .classifiers import postgres_connection_lost, postgres_transaction_conflict, sqlstate
from .conf import resilience_settings
from .core.deadline import bounded, remaining
from .decorators import BreakerHandle, circuit_breaker
from .exceptions import DeadlineExceeded
from .retry import retry

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


def _set_statement_timeout(db: Any, raw_cursor: Any, seconds: float, local: bool) -> None:
    milliseconds = max(int(seconds * 1000), 1)
    raw_cursor.execute("SELECT set_config('statement_timeout', %s, %s)", (str(milliseconds), local))
    if not local:
        db.resilience_timeout_on = db.connection  # reset before the next statement without a deadline


def _reset_statement_timeout(db: Any, raw_cursor: Any) -> None:
    if getattr(db, "resilience_timeout_on", None) is db.connection:
        raw_cursor.execute("RESET statement_timeout")
    db.resilience_timeout_on = None


def _reconnect(db: Any, cursor_wrapper: Any) -> None:
    """Replace a lost connection, and the raw cursor under the caller's cursor wrapper with it."""
    db.close()
    db.ensure_connection()
    cursor_wrapper.cursor = db.create_cursor()


def statement_guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Django execute wrapper installed by the backend (see the module docstring)."""
    db, cursor_wrapper = context["connection"], context["cursor"]
    if remaining() == 0.0:
        raise DeadlineExceeded("deadline passed before the statement was sent")
    in_transaction = db.in_atomic_block or not db.get_autocommit()
    attempt_timeout = retry("postgres").retrying.policy.attempt_timeout  # per statement, within the deadline

    def run() -> Any:
        deadline_left = remaining()
        left = bounded(attempt_timeout)
        # the server's timer (whole milliseconds) may fire a hair before the local deadline: so a
        # cancellation counts as the deadline's whenever the timeout we set came from the deadline
        by_deadline = deadline_left is not None and (attempt_timeout is None or deadline_left <= attempt_timeout)
        try:
            if left is not None:
                _set_statement_timeout(db, cursor_wrapper.cursor, left, local=in_transaction)
            elif not in_transaction:
                _reset_statement_timeout(db, cursor_wrapper.cursor)
            return execute(sql, params, many, context)
        except DatabaseError as exc:
            if sqlstate(exc) == QUERY_CANCELED and by_deadline:
                raise DeadlineExceeded("statement cancelled at the deadline") from exc
            raise

    breaker = breaker_for(db.alias)
    if in_transaction or many or not is_read(sql):
        return breaker.call(run)

    def attempt() -> Any:
        try:
            return breaker.call(run)
        except DatabaseError as exc:
            if postgres_connection_lost(exc):
                _reconnect(db, cursor_wrapper)
            raise

    return retry("postgres").call(attempt)


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
    """``DATABASE_ROUTERS = ["resilience.db.ReplicaRouter"]`` with
    ``RESILIENCE["DATABASE_REPLICAS"] = {"default": ["replica1", "replica2"]}``: reads go to the first
    replica whose breaker is not open, else to the primary; writes and migrations to the primary."""

    def _replicas(self) -> dict[str, list[str]]:
        return resilience_settings.DATABASE_REPLICAS  # type: ignore[no-any-return]

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        for primary, replicas in self._replicas().items():
            for alias in replicas:
                if breaker_for(alias).state not in _OPEN:
                    return alias
            return primary
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return next(iter(self._replicas()), None)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if any(db in replicas for replicas in self._replicas().values()) else None
