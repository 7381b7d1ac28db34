"""A generator's iteration as one call through a breaker.

Calling a generator function runs nothing; the dependency is used while the generator is iterated.
So the call is admitted at the first ``next()`` (rejected then with ``CircuitOpenError`` if the
breaker is open), an exception raised out of the generator is the call's outcome (classified like
any other: a failure, or nothing for ignored and cancelling exceptions), running to the end is a
success, and closing it early (``close()``, ``aclose()``, or dropping it) counts nothing and hands
a half-open probe permit back. Only the time spent inside the generator counts towards
``slow_call`` and ``timeout``: the consumer's time between items (a slow client reading a stream)
is not the dependency's fault. An async generator's steps are cancelled once ``timeout`` is used
up (``CallTimeout``); a sync generator cannot be interrupted, so one that ran too long is counted
as failed when it ends, like a sync ``with`` block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from resilience.core.clock import Clock
from resilience.exceptions import CallTimeout

if TYPE_CHECKING:
    from resilience.core.breaker import CircuitBreaker, Ticket

T = TypeVar("T")


class GeneratorCall:
    """Watches one sync generator's iteration for ``core.wrapping.decorate``."""

    __slots__ = ("_breaker", "_clock", "_ticket", "_paused")

    def __init__(self, breaker: CircuitBreaker, clock: Clock) -> None:
        self._breaker, self._clock = breaker, clock
        self._ticket: Ticket | None = None
        self._paused = 0.0

    def start(self) -> None:
        self._ticket = self._breaker.admit()

    def pause(self) -> None:
        self._paused = self._clock.monotonic()

    def resume(self) -> None:
        assert self._ticket is not None
        self._ticket.started += self._clock.monotonic() - self._paused  # the consumer's time is not the call's

    def _elapsed(self) -> float:
        assert self._ticket is not None
        return self._clock.monotonic() - self._ticket.started

    def _timed_out(self, exc: BaseException | None) -> BaseException | None:
        limit = self._breaker.config.timeout
        if exc is None and limit is not None and self._elapsed() > limit:
            return CallTimeout(self._breaker.name, limit)  # cannot be interrupted: counted afterwards
        return exc

    def end(self, exc: BaseException | None) -> None:
        assert self._ticket is not None
        self._breaker.finish(self._ticket, self._timed_out(exc))


class AsyncGeneratorCall(GeneratorCall):
    """Watches one async generator's iteration; each step is bounded by what is left of ``timeout``."""

    __slots__ = ()

    async def start(self) -> None:  # type: ignore[override]
        self._ticket = await self._breaker.aadmit()

    async def step(self, step: Awaitable[T]) -> T:
        limit = self._breaker.config.timeout
        if limit is None:
            return await step
        timer = asyncio.timeout(max(limit - self._elapsed(), 0.0))
        try:
            async with timer:
                return await step
        except TimeoutError as exc:
            if timer.expired():
                raise CallTimeout(self._breaker.name, limit) from exc
            raise

    async def end(self, exc: BaseException | None) -> None:  # type: ignore[override]
        assert self._ticket is not None
        await self._breaker.afinish(self._ticket, self._timed_out(exc))
