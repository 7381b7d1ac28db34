"""One way to turn a ``call``/``acall`` pair into a decorator for sync and async functions.

Generator functions are different: calling one runs nothing, the work happens while it is iterated.
Wrapping only the call would protect creating the generator and nothing else, so ``decorate``
refuses them unless the caller says how to watch an iteration (``watch``/``awatch``: the breaker
does). Retry and fallback never can: a call that has already yielded items cannot be run again or
replaced without the consumer seeing the items twice.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar

from resilience.exceptions import ConfigurationError

T = TypeVar("T")


class Watch(Protocol):
    """One iteration of a sync generator, seen from outside: its start, its pauses, its end."""

    def start(self) -> None: ...  # at the first next(); may refuse by raising

    def pause(self) -> None: ...  # the generator yielded: the consumer's time begins

    def resume(self) -> None: ...  # the consumer asked for more: the generator's time again

    def end(self, exc: BaseException | None) -> None: ...  # returned (None), raised, or closed (GeneratorExit)


class AsyncWatch(Protocol):
    """The same for an async generator; ``step`` runs each step (to bound it in time, say)."""

    async def start(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    async def step(self, step: Awaitable[T]) -> T: ...

    async def end(self, exc: BaseException | None) -> None: ...


def decorate(
    fn: Callable[..., Any],
    call: Callable[..., Any],
    acall: Callable[..., Awaitable[Any]],
    *,
    watch: Callable[[], Watch] | None = None,
    awatch: Callable[[], AsyncWatch] | None = None,
) -> Callable[..., Any]:
    """``fn`` wrapped so that each invocation goes through ``call(fn, ...)`` (or ``acall`` for coroutines).

    A generator function's iteration is watched by a new ``watch()`` (``awatch()`` for async
    generators) each time; without one, decorating a generator function is a ``ConfigurationError``.
    """
    if inspect.isgeneratorfunction(fn):
        if watch is None:
            raise _refused(fn)
        return _watched_generator(fn, watch)
    if inspect.isasyncgenfunction(fn):
        if awatch is None:
            raise _refused(fn)
        return _watched_async_generator(fn, awatch)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return wrapper


def _refused(fn: Callable[..., Any]) -> ConfigurationError:
    name = getattr(fn, "__qualname__", repr(fn))
    return ConfigurationError(
        f"{name!r} is a generator function: wrapping it would protect only creating the generator, not"
        " iterating it, and a call that has yielded items cannot be retried or replaced; decorate the"
        " function that consumes it, or return a list"
    )


def _watched_generator(fn: Callable[..., Generator[Any, Any, Any]], watch: Callable[[], Watch]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        # ``yield from`` with a watch around each step (PEP 380's expansion, for generators only).
        seen = watch()
        seen.start()
        try:
            inner = fn(*args, **kwargs)
            try:
                item = next(inner)
            except StopIteration as stop:
                result = stop.value
            else:
                while True:
                    seen.pause()
                    try:
                        sent = yield item
                    except GeneratorExit:
                        inner.close()
                        raise
                    except BaseException as thrown:  # noqa: BLE001 - gen.throw(): handed to the inner generator
                        seen.resume()
                        try:
                            item = inner.throw(thrown)
                        except StopIteration as stop:
                            result = stop.value
                            break
                    else:
                        seen.resume()
                        try:
                            item = inner.send(sent)
                        except StopIteration as stop:
                            result = stop.value
                            break
        except BaseException as exc:
            seen.end(exc)
            raise
        seen.end(None)
        return result

    return wrapper


def _watched_async_generator(fn: Callable[..., AsyncGenerator[Any, Any]], awatch: Callable[[], AsyncWatch]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        seen = awatch()
        await seen.start()
        try:
            inner = fn(*args, **kwargs)
            try:
                item = await seen.step(inner.__anext__())
            except StopAsyncIteration:
                pass
            else:
                while True:
                    seen.pause()
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await inner.aclose()
                        raise
                    except BaseException as thrown:  # noqa: BLE001 - agen.athrow(): handed to the inner generator
                        seen.resume()
                        try:
                            item = await seen.step(inner.athrow(thrown))
                        except StopAsyncIteration:
                            break
                    else:
                        seen.resume()
                        try:
                            item = await seen.step(inner.asend(sent))
                        except StopAsyncIteration:
                            break
        except BaseException as exc:
            await seen.end(exc)
            raise
        await seen.end(None)

    return wrapper
