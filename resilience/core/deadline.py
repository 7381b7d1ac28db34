"""Deadlines in a context variable: nested deadlines take the earlier; ``remaining()`` reads them.

A deadline is an absolute point on the monotonic clock, so it survives ``await`` and is copied
into tasks and into threads started with ``run_in_thread``/``ContextThreadPoolExecutor``.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from resilience.core.clock import SYSTEM_CLOCK, Clock
from resilience.core.validation import is_number
from resilience.exceptions import ConfigurationError, DeadlineExceeded

T = TypeVar("T")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("resilience_deadline", default=None)
MAX_SECONDS = 86_400.0


class deadline:  # noqa: N801 - used like a function: ``with deadline(2.0):``
    """Bound everything inside to ``seconds`` from now, or less if an outer deadline is sooner."""

    __slots__ = ("seconds", "clock", "_token", "at")

    def __init__(self, seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if not is_number(seconds):
            raise ConfigurationError(f"deadline seconds must be a number, got {seconds!r}")
        self.seconds = min(max(float(seconds), 0.0), MAX_SECONDS)
        self.clock = clock
        self._token: contextvars.Token[float | None] | None = None
        self.at = 0.0

    def __enter__(self) -> deadline:
        at = self.clock.monotonic() + self.seconds
        outer = _DEADLINE.get()
        self.at = at if outer is None or at < outer else outer
        self._token = _DEADLINE.set(self.at)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None

    async def __aenter__(self) -> deadline:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    def remaining(self) -> float:
        return max(self.at - self.clock.monotonic(), 0.0)


def remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left before the current deadline (0.0 once passed), or None when there is none."""
    at = _DEADLINE.get()
    return None if at is None else max(at - clock.monotonic(), 0.0)


def bounded(timeout: float | None, clock: Clock = SYSTEM_CLOCK) -> float | None:
    """``min(timeout, remaining())``: the timeout to give one attempt or one I/O call."""
    left = remaining(clock)
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)


def check(clock: Clock = SYSTEM_CLOCK) -> None:
    """Raise ``DeadlineExceeded`` if the current deadline has passed."""
    left = remaining(clock)
    if left is not None and left <= 0.0:
        raise DeadlineExceeded()


def run_in_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``fn`` so that, run in another thread, it sees the caller's deadline (and context).

    The wrapper may be called from several threads at once, and again: each call runs in its own
    copy of the context captured here (one context cannot be entered twice at once: RuntimeError),
    so every call starts from the caller's deadline and nothing one call sets leaks into another."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return wrapper


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (deadline included)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
