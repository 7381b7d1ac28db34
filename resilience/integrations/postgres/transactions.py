"""``retry_transaction``: re-run a whole ``atomic`` block on serialization failure or deadlock.

Nothing inside ``atomic`` is retried statement by statement: a conflict can only be resolved by
rolling back and running the whole block again, and only from the outermost transaction.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import DatabaseError, connections, transaction
from django.db.transaction import TransactionManagementError

from resilience.integrations.postgres.classifiers import postgres_transaction_conflict
from resilience.retries.policies import retry

T = TypeVar("T")


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
