"""The retry loop: backoff with jitter, attempts, a total time bound, ``Retry-After``, the current
deadline and a retry budget. Sleep, clock and randomness are injected so tests never sleep."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from resilience.core.backoff import Backoff, FullJitter
from resilience.core.clock import SYSTEM_CLOCK, Clock
from resilience.core.deadline import remaining
from resilience.core.event import Event, EventSink, discard
from resilience.core.ports import RetryBudget
from resilience.core.validation import check_number
from resilience.core.wrapping import decorate
from resilience.exceptions import CircuitOpenError, DeadlineExceeded

T = TypeVar("T")
NEVER_RETRIED = (CircuitOpenError, DeadlineExceeded)


def transient(exc: BaseException) -> bool:
    """The default classifier: connection and timeout errors only."""
    return isinstance(exc, (ConnectionError, TimeoutError))


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: ``attempts`` in all (first call included), waits from ``backoff``, at most
    ``max_time`` seconds overall, only for errors ``retry_on`` accepts, within ``budget``."""

    name: str = "custom"
    attempts: int = 3
    backoff: Backoff = field(default_factory=FullJitter)
    max_time: float | None = None
    attempt_timeout: float | None = None  # for adapters: each attempt's I/O timeout (bounded by the deadline)
    retry_on: Callable[[BaseException], bool] = transient
    budget: RetryBudget | None = None
    stop_if: Callable[[], bool] | None = None  # e.g. "the dependency's breaker is open": stop before sleeping

    def __post_init__(self) -> None:
        check_number(f"retry policy {self.name!r}: attempts", self.attempts, 1, 100, integer=True)
        for key in ("max_time", "attempt_timeout"):
            value = getattr(self, key)
            if value is not None:  # seconds
                check_number(f"retry policy {self.name!r}: {key}", value, 0, 86_400, low_open=True)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the failing side asked us to wait: ``exc.retry_after`` or a ``Retry-After`` header."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        value = headers.get("Retry-After") if headers is not None and hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            seconds = parsedate_to_datetime(str(value)).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), 3600.0) if seconds == seconds else None


OUTCOMES = ("successful_without_retry", "successful_with_retry", "failed_without_retry", "failed_with_retry")
_live: weakref.WeakSet[Retrying] = weakref.WeakSet()  # every Retrying of the process, for metrics exporters


class Retrying:
    """Runs callables under one ``RetryPolicy``; emits ``retry``/``give_up``/``budget_refused`` events.

    Each call's outcome is also counted in process (``outcome_totals()``, in the order of
    ``OUTCOMES``: resilience4j's four kinds), without an event: a successful call is most calls."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        emit: EventSink = discard,
    ) -> None:
        self.policy = policy
        self.clock, self.sleep, self.asleep = clock, sleep, asleep
        self.rng = rng or random.Random()
        self.emit = emit
        self._totals = [0, 0, 0, 0]
        self._lock = threading.Lock()
        _live.add(self)

    @staticmethod
    def live() -> list[Retrying]:
        """Every ``Retrying`` of the process that is still in use."""
        return list(_live)

    def record_outcome(self, succeeded: bool, attempts: int) -> None:
        """Count one call that ended after ``attempts`` attempts (the AWS layer, which loops in botocore, calls it)."""
        with self._lock:
            self._totals[(0 if succeeded else 2) + (attempts > 1)] += 1

    def outcome_totals(self) -> tuple[int, int, int, int]:
        """Calls so far by ``OUTCOMES`` kind."""
        with self._lock:
            return (self._totals[0], self._totals[1], self._totals[2], self._totals[3])

    def _give_up(self, exc: BaseException, attempt: int, reason: str) -> None:
        kind = "budget_refused" if reason == "budget" else "give_up"
        self.emit(Event("retry", kind, self.policy.name, {"attempt": attempt, "reason": reason, "error": type(exc).__name__}))

    def next_delay(self, exc: BaseException, attempt: int, started: float, previous: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and re-raise ``exc``."""
        p = self.policy
        if not isinstance(exc, Exception) or isinstance(exc, NEVER_RETRIED) or not p.retry_on(exc):
            return None
        if attempt >= p.attempts:
            self._give_up(exc, attempt, "attempts")
            return None
        delay = p.backoff(attempt, previous, self.rng)
        asked = retry_after(exc)
        if asked is not None:
            delay = max(delay, asked)
        if p.max_time is not None and self.clock.monotonic() - started + delay > p.max_time:
            self._give_up(exc, attempt, "max_time")
            return None
        left = remaining(self.clock)
        if left is not None and delay >= left:
            self._give_up(exc, attempt, "deadline")  # sleeping would pass the deadline: fail now
            return None
        if p.stop_if is not None and p.stop_if():
            self._give_up(exc, attempt, "circuit_open")
            return None
        if p.budget is not None and not p.budget.try_retry():
            self._give_up(exc, attempt, "budget")
            return None
        self.emit(Event("retry", "retry", p.name, {"attempt": attempt, "delay": round(delay, 4), "error": type(exc).__name__}))
        return delay

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.policy.budget is not None:
            self.policy.budget.record_call()
        started = self.clock.monotonic() if self.policy.max_time is not None else 0.0  # only max_time reads it
        attempt, previous = 0, 0.0
        while True:
            attempt += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                delay = self.next_delay(exc, attempt, started, previous)
                if delay is None:
                    self.record_outcome(False, attempt)
                    raise
            else:
                self.record_outcome(True, attempt)
                return result
            self.sleep(delay)
            previous = delay

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self.policy.budget is not None:
            self.policy.budget.record_call()
        started = self.clock.monotonic() if self.policy.max_time is not None else 0.0  # only max_time reads it
        attempt, previous = 0, 0.0
        while True:
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                delay = self.next_delay(exc, attempt, started, previous)
                if delay is None:
                    self.record_outcome(False, attempt)
                    raise
            else:
                self.record_outcome(True, attempt)
                return result
            await self.asleep(delay)
            previous = delay

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async callable."""
        return decorate(fn, self.call, self.acall)
