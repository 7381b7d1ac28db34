"""Generators through a breaker: admitted at the first step, the iteration is the call.

An exception raised during iteration is the call's failure, running to the end is its success,
closing it early counts nothing (and hands a probe permit back). Only the time spent inside the
generator counts towards ``slow_call`` and ``timeout``, never the consumer's time between items.
"""

import asyncio
import inspect

import pytest

from resilience import circuit_breaker, fallback, retry
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.core.retry import Retrying, RetryPolicy
from resilience.exceptions import CallTimeout, CircuitOpenError, ConfigurationError
from resilience.fallbacks.degrade import degradable
from resilience.storage.memory.breaker import MemoryBreakerStore
from tests.conftest import resilience_settings


def make(**config):
    clock = FakeClock()
    defaults = {"minimum_calls": 2, "open_for": 10, "half_open_calls": 1}
    store = MemoryBreakerStore(clock)
    return CircuitBreaker("gen", BreakerConfig(**{**defaults, **config}), store, clock=clock), clock


def items(n, fail_after=None, clock=None, step=0.0):
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise ConnectionError("dependency down mid-stream")
        if clock is not None:
            clock.advance(step)
        yield i
    return "done"


def drain(gen):
    try:
        return list(gen)
    except ConnectionError:
        return None


# -- sync generators, breaker(fn) ---------------------------------------------------------------
def test_an_error_raised_during_iteration_counts_as_the_calls_failure():
    b, _ = make()
    stream = b(items)
    assert drain(stream(3, fail_after=1)) is None
    assert b.local_stats().failures == 1
    assert drain(stream(3, fail_after=1)) is None  # 2 calls, 2 failures
    assert b.state == "open"
    with pytest.raises(CircuitOpenError):
        next(stream(3))


def test_a_generator_that_runs_to_the_end_counts_one_success_and_keeps_its_return_value():
    b, _ = make()

    @b
    def wrapped():
        return (yield from items(3))

    def consumer():
        return (yield from wrapped())

    got = []
    gen = consumer()
    try:
        while True:
            got.append(next(gen))
    except StopIteration as stop:
        assert stop.value == "done"
    assert got == [0, 1, 2]
    stats = b.local_stats()
    assert (stats.calls, stats.failures) == (1, 0)


def test_success_reaching_minimum_calls_trips_a_closed_breaker_with_enough_failures():
    b, _ = make(failure_rate=50)
    stream = b(items)
    assert drain(stream(2, fail_after=0)) is None
    assert b.state == "closed"
    assert list(stream(2)) == [0, 1]  # 2 calls, 50 % failed
    assert b.state == "open"


def test_admission_happens_at_the_first_next_not_when_the_generator_is_created():
    b, _ = make()
    stream = b(items)
    b.force_open()
    gen = stream(3)  # creating it runs nothing and is not rejected
    b.reset()
    assert next(gen) == 0  # admitted now, on the state at this moment
    b.force_open()
    later = stream(3)
    with pytest.raises(CircuitOpenError):
        next(later)


def test_closing_a_generator_early_counts_nothing():
    b, _ = make()
    gen = b(items)(5)
    assert next(gen) == 0
    gen.close()
    assert b.local_stats().calls == 0


def test_a_probe_closed_early_hands_its_permit_back():
    b, clock = make(minimum_calls=1)
    stream = b(items)
    assert drain(stream(1, fail_after=0)) is None
    assert b.state == "open"
    clock.advance(10)
    probe = stream(5)
    assert next(probe) == 0  # the only half-open permit
    with pytest.raises(CircuitOpenError):
        next(stream(5))
    probe.close()  # abandoned: neither success nor failure
    assert b.state == "half_open"
    assert list(stream(2)) == [0, 1]  # the permit is free again; this probe closes the breaker
    assert b.state == "closed"


def test_send_and_throw_reach_the_wrapped_generator():
    b, _ = make()

    @b
    def echo():
        received = []
        try:
            while True:
                received.append((yield len(received)))
        except KeyError:
            yield received

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.send("b") == 2
    assert gen.throw(KeyError("stop")) == ["a", "b"]
    gen.close()


def test_only_time_inside_the_generator_counts_as_slow():
    b, clock = make(minimum_calls=1, slow_call=1.0, slow_rate=50)
    for _ in b(items)(3):
        clock.advance(5)  # a slow consumer: not the dependency's fault
    assert b.state == "closed" and b.local_stats().slow == 0
    list(b(items)(3, clock=clock, step=0.5))  # 1.5 s inside the generator
    assert b.state == "open"


def test_a_sync_generator_over_its_timeout_is_counted_as_failed_when_it_ends():
    b, clock = make(minimum_calls=1, timeout=1.0)
    assert list(b(items)(2, clock=clock, step=0.6)) == [0, 1]  # cannot be interrupted: finishes
    assert b.state == "open"


def test_the_decorated_function_is_still_a_generator_function():
    b, _ = make()
    assert inspect.isgeneratorfunction(b(items))

    async def agen():
        yield 1

    assert inspect.isasyncgenfunction(b(agen))


# -- async generators -----------------------------------------------------------------------------
async def aitems(n, fail_after=None, clock=None, step=0.0, sleep=0.0):
    for i in range(n):
        if fail_after is not None and i == fail_after:
            raise ConnectionError("dependency down mid-stream")
        if clock is not None:
            clock.advance(step)
        if sleep:
            await asyncio.sleep(sleep)
        yield i


async def adrain(agen):
    try:
        return [x async for x in agen]
    except ConnectionError:
        return None


def test_async_generators_count_errors_successes_and_early_closes():
    b, _ = make(minimum_calls=3, failure_rate=50)
    stream = b(aitems)

    async def scenario():
        assert await adrain(stream(3)) == [0, 1, 2]
        assert b.local_stats().calls == 1
        early = stream(3)
        assert await early.__anext__() == 0
        await early.aclose()
        assert b.local_stats().calls == 1  # closed early: nothing counted
        assert await adrain(stream(3, fail_after=1)) is None
        assert await adrain(stream(3, fail_after=2)) is None  # 3 calls, 2 failed
        assert b.state == "open"
        with pytest.raises(CircuitOpenError):
            await stream(3).__anext__()

    asyncio.run(scenario())


def test_async_generator_asend_athrow_and_slow_consumers():
    b, clock = make(minimum_calls=1, slow_call=1.0, slow_rate=50)

    @b
    async def echo():
        got = []
        try:
            while True:
                got.append((yield len(got)))
        except KeyError:
            yield got

    async def scenario():
        gen = echo()
        assert await gen.__anext__() == 0
        clock.advance(5)  # the consumer's time
        assert await gen.asend("a") == 1
        assert await gen.athrow(KeyError("stop")) == ["a"]
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
        assert b.state == "closed" and b.local_stats().slow == 0
        assert await adrain(b(aitems)(2, clock=clock, step=0.6)) == [0, 1]
        assert b.state == "open"  # 1.2 s inside the generator

    asyncio.run(scenario())


def test_an_async_generator_step_is_cancelled_at_the_timeout_and_counted_as_failed():
    b, _ = make(minimum_calls=1, timeout=0.05)

    async def scenario():
        gen = b(aitems)(3, sleep=1.0)
        with pytest.raises(CallTimeout):
            await gen.__anext__()
        assert b.state == "open"

    asyncio.run(scenario())


# -- through @circuit_breaker("name") -------------------------------------------------------------
@pytest.fixture
def configured(settings):
    settings.RESILIENCE = resilience_settings(BREAKERS={"feed": {"minimum_calls": 2, "failure_rate": 60, "open_for": 30}})


def test_circuit_breaker_decorator_protects_sync_generators(configured):
    @circuit_breaker("feed")
    def feed(fail):
        yield 1
        if fail:
            raise ConnectionError("down")
        yield 2

    assert inspect.isgeneratorfunction(feed)
    assert list(feed(False)) == [1, 2]
    assert circuit_breaker("feed").local_stats().calls == 1
    for _ in range(2):
        with pytest.raises(ConnectionError):
            list(feed(True))
    assert circuit_breaker("feed").state == "open"  # 3 calls, 2 failed
    gen = feed(False)
    with pytest.raises(CircuitOpenError):
        next(gen)


def test_circuit_breaker_decorator_protects_async_generators(configured):
    @circuit_breaker("feed")
    async def feed(fail):
        yield 1
        if fail:
            raise ConnectionError("down")
        yield 2

    async def scenario():
        assert [x async for x in feed(False)] == [1, 2]
        early = feed(False)
        await early.__anext__()
        await early.aclose()
        assert circuit_breaker("feed").local_stats().calls == 1
        for _ in range(2):
            with pytest.raises(ConnectionError):
                [x async for x in feed(True)]
        assert circuit_breaker("feed").state == "open"
        with pytest.raises(CircuitOpenError):
            await feed(False).__anext__()

    assert inspect.isasyncgenfunction(feed)
    asyncio.run(scenario())


# -- the other decorators refuse generators: a call cannot be retried or replaced once it yielded ---
async def _agen():
    yield 1


def _gen():
    yield 1


@pytest.mark.parametrize("fn", [_gen, _agen])
@pytest.mark.parametrize(
    "decorator",
    [
        lambda: retry(RetryPolicy(name="x", attempts=3)),
        lambda: Retrying(RetryPolicy(name="x", attempts=3)),
        lambda: fallback("x", default=[]),
        lambda: degradable("x", default=[]),
    ],
    ids=["retry", "Retrying", "fallback", "degradable"],
)
def test_retry_fallback_and_degradable_refuse_generator_functions(settings, decorator, fn):
    settings.RESILIENCE = resilience_settings()
    with pytest.raises(ConfigurationError, match="generator function"):
        decorator()(fn)


def test_retry_over_a_breaker_protected_generator_is_refused_too(configured):
    with pytest.raises(ConfigurationError, match="generator function"):
        retry(RetryPolicy(name="x", attempts=3))(circuit_breaker("feed")(_gen))
