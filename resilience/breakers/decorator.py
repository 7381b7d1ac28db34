"""``circuit_breaker(name)``: decorator (functions, coroutines, generators), ``with``, ``async with``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from resilience.breakers.registry import breakers
from resilience.core.breaker import CircuitBreaker
from resilience.core.wrapping import decorate


class BreakerHandle:
    """A named breaker resolved lazily, so settings changes (and tests) take effect."""

    __slots__ = ("name", "overrides", "_breaker", "_version")

    def __init__(self, name: str, overrides: dict[str, Any]) -> None:
        self.name = breakers.declare(name)  # listable and forcible from every process before its first call
        self.overrides = overrides
        self._breaker: CircuitBreaker | None = None
        self._version = -1

    @property
    def breaker(self) -> CircuitBreaker:
        breaker = self._breaker
        if breaker is None or self._version != breakers.version:
            breaker = self._breaker = breakers.get_or_create(self.name, **self.overrides)
            self._version = breakers.version
        return breaker

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):  # the iteration is the call
            return decorate(
                fn, self.call, self.acall,
                watch=lambda: self.breaker.generator_call(), awatch=lambda: self.breaker.async_generator_call(),
            )  # fmt: skip
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.breaker.acall(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            breaker = self._breaker
            if breaker is None or self._version != breakers.version:
                breaker = self.breaker
            return breaker.call(fn, *args, **kwargs)

        return wrapper

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` through the breaker (defined here: ``__getattr__`` would cost a microsecond)."""
        breaker = self._breaker
        if breaker is None or self._version != breakers.version:
            breaker = self.breaker
        return breaker.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` through the breaker."""
        return await self.breaker.acall(fn, *args, **kwargs)

    def __enter__(self) -> CircuitBreaker:
        breaker = self.breaker
        breaker.__enter__()
        return breaker

    def __exit__(self, *exc: Any) -> None:
        self.breaker.__exit__(*exc)

    async def __aenter__(self) -> CircuitBreaker:
        breaker = self.breaker
        await breaker.__aenter__()
        return breaker

    async def __aexit__(self, *exc: Any) -> bool:
        return await self.breaker.__aexit__(*exc)

    def __getattr__(self, attr: str) -> Any:  # .state, .reset(), .force_open() ...
        return getattr(self.breaker, attr)


def circuit_breaker(name: str, **overrides: Any) -> BreakerHandle:
    """Protect a call with the breaker ``name`` (settings from ``RESILIENCE["BREAKERS"]``, then ``overrides``)."""
    return BreakerHandle(name, overrides)
