"""decorate()'s generator wrappers, seen through a recording watch: what the watch is told and when,
and that close, throw and an inner return behave exactly as with ``yield from``."""

import asyncio

import pytest

from resilience.core.wrapping import decorate
from resilience.exceptions import ConfigurationError


class Watch:
    def __init__(self, log):
        self.log = log

    def start(self):
        self.log.append("start")

    def pause(self):
        self.log.append("pause")

    def resume(self):
        self.log.append("resume")

    def end(self, exc):
        self.log.append(("end", type(exc).__name__ if exc is not None else None))


class AsyncWatch(Watch):
    async def start(self):
        self.log.append("start")

    async def step(self, step):
        return await step

    async def end(self, exc):
        self.log.append(("end", type(exc).__name__ if exc is not None else None))


def never(*args, **kwargs):
    raise AssertionError("a generator's iteration is not a call")


def watched(fn, log):
    return decorate(fn, never, never, watch=lambda: Watch(log), awatch=lambda: AsyncWatch(log))


def catching(log):
    def gen():
        try:
            yield 1
        except KeyError:
            log.append("caught")
            return "stopped by throw"
        finally:
            log.append("inner finally")
        yield 2

    return gen


def test_closing_the_outer_generator_closes_the_inner_one():
    log = []
    gen = watched(catching(log), log)()
    assert next(gen) == 1
    gen.close()
    assert log == ["start", "pause", "inner finally", ("end", "GeneratorExit")]


def test_a_throw_resumes_the_watch_then_reaches_the_inner_generator_and_its_return_ends_the_iteration():
    log = []
    gen = watched(catching(log), log)()
    assert next(gen) == 1
    with pytest.raises(StopIteration) as stop:
        gen.throw(KeyError("x"))
    assert stop.value.value == "stopped by throw"
    assert log == ["start", "pause", "resume", "caught", "inner finally", ("end", None)]


def test_send_resumes_the_watch_and_an_inner_return_ends_the_iteration_with_its_value():
    log = []

    def echo():
        got = yield "first"
        return f"got {got}"

    gen = watched(echo, log)()
    assert next(gen) == "first"
    with pytest.raises(StopIteration) as stop:
        gen.send("x")
    assert stop.value.value == "got x"
    assert log == ["start", "pause", "resume", ("end", None)]


def test_a_generator_that_returns_at_once_is_started_and_ended_only():
    log = []

    def empty():
        return "nothing"
        yield  # pragma: no cover

    with pytest.raises(StopIteration) as stop:
        next(watched(empty, log)())
    assert stop.value.value == "nothing" and log == ["start", ("end", None)]


def test_without_a_watch_a_generator_function_is_refused():
    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(ConfigurationError, match="is a generator function"):
        decorate(gen, never, never)
    with pytest.raises(ConfigurationError, match="is a generator function"):
        decorate(agen, never, never, watch=lambda: Watch([]))


def acatching(log):
    async def agen():
        try:
            yield 1
        except KeyError:
            log.append("caught")
            return
        finally:
            log.append("inner finally")
        yield 2

    return agen


def test_async_closing_the_outer_generator_closes_the_inner_one():
    log = []

    async def scenario():
        gen = watched(acatching(log), log)()
        assert await gen.__anext__() == 1
        await gen.aclose()

    asyncio.run(scenario())
    assert log == ["start", "pause", "inner finally", ("end", "GeneratorExit")]


def test_async_a_throw_resumes_the_watch_then_reaches_the_inner_generator_and_its_return_ends_the_iteration():
    log = []

    async def scenario():
        gen = watched(acatching(log), log)()
        assert await gen.__anext__() == 1
        with pytest.raises(StopAsyncIteration):
            await gen.athrow(KeyError("x"))

    asyncio.run(scenario())
    assert log == ["start", "pause", "resume", "caught", "inner finally", ("end", None)]


def test_async_send_resumes_the_watch_and_an_inner_return_ends_the_iteration():
    log = []

    async def echo():
        got = yield "first"
        log.append(f"got {got}")

    async def scenario():
        gen = watched(echo, log)()
        assert await gen.__anext__() == "first"
        with pytest.raises(StopAsyncIteration):
            await gen.asend("x")

    asyncio.run(scenario())
    assert log == ["start", "pause", "resume", "got x", ("end", None)]


def test_plain_and_coroutine_functions_go_through_call_and_acall_with_their_arguments():
    seen = []

    def call(fn, *args, **kwargs):
        seen.append(("call", args, kwargs))
        return fn(*args, **kwargs)

    async def acall(fn, *args, **kwargs):
        seen.append(("acall", args, kwargs))
        return await fn(*args, **kwargs)

    def plain(x, *, y):
        return x + y

    async def coro(x, *, y):
        return x * y

    assert decorate(plain, call, acall)(2, y=3) == 5
    assert asyncio.run(decorate(coro, call, acall)(2, y=3)) == 6
    assert seen == [("call", (2,), {"y": 3}), ("acall", (2,), {"y": 3})]
    assert decorate(plain, call, acall).__name__ == "plain"
