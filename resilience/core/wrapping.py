"""One way to turn a ``call``/``acall`` pair into a decorator for sync and async functions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


def decorate(fn: Callable[..., Any], call: Callable[..., Any], acall: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """``fn`` wrapped so that each invocation goes through ``call(fn, ...)`` (or ``acall`` for coroutines)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper
