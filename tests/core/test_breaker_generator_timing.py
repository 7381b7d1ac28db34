"""A generator's time against the breaker's ``timeout``, on a fake clock: only time inside the
generator counts, a sync one exactly at its timeout is not over it, and each async step gets what
is left (nothing once it is used up). Steps that yield to the loop stand in for I/O: no sleeps."""

import asyncio

import pytest

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.exceptions import CallTimeout
from resilience.storage.memory.breaker import MemoryBreakerStore


def make(**config):
    clock = FakeClock()
    store = MemoryBreakerStore(clock)
    defaults = {"minimum_calls": 1, "open_for": 10, "half_open_calls": 1}
    return CircuitBreaker("gen", BreakerConfig(**{**defaults, **config}), store, clock=clock), clock


def ticks(clock, steps, loop_turns=5):
    """Each item takes ``steps[i]`` fake seconds and a few turns of the event loop."""

    async def agen():
        for i, seconds in enumerate(steps):
            clock.advance(seconds)
            for _ in range(loop_turns):
                await asyncio.sleep(0)
            yield i

    return agen


def test_a_sync_generator_within_its_timeout_is_a_success():
    b, clock = make(timeout=1.0)

    def gen():
        clock.advance(0.4)
        yield 1
        clock.advance(0.4)
        yield 2

    assert list(b(gen)()) == [1, 2]
    assert b.state == "closed" and b.local_stats().failures == 0 and b.local_stats().calls == 1


def test_a_sync_generator_exactly_at_its_timeout_is_not_over_it():
    b, clock = make(timeout=1.0)

    def gen():
        clock.advance(1.0)
        yield 1

    assert list(b(gen)()) == [1]
    assert b.state == "closed" and b.local_stats().failures == 0


def test_a_sync_generators_consumer_time_is_not_counted_towards_its_timeout():
    b, clock = make(timeout=1.0)

    def gen():
        clock.advance(0.5)
        yield 1
        clock.advance(0.4)
        yield 2

    for _ in b(gen)():
        clock.advance(100)  # a slow reader
    assert b.state == "closed" and b.local_stats().failures == 0


def test_async_steps_within_the_timeout_all_complete():
    b, clock = make(timeout=1.0)

    async def scenario():
        return [x async for x in b(ticks(clock, [0.3, 0.3, 0.3]))()]

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert b.state == "closed" and b.local_stats().failures == 0


def test_an_async_step_once_the_timeout_is_used_up_is_cut_at_once():
    b, clock = make(timeout=1.0)

    async def scenario():
        gen = b(ticks(clock, [1.0, 0.0]))()
        assert await gen.__anext__() == 0  # this step used the whole second (fake time)
        with pytest.raises(CallTimeout):
            await gen.__anext__()  # nothing left: cancelled at its first turn of the loop

    asyncio.run(scenario())
    assert b.state == "open"


def test_an_async_step_past_the_timeout_is_cut_at_once_too():
    b, clock = make(timeout=1.0)

    async def scenario():
        gen = b(ticks(clock, [1.5, 0.0]))()
        assert await gen.__anext__() == 0
        with pytest.raises(CallTimeout):
            await gen.__anext__()

    asyncio.run(scenario())


def test_a_timeout_error_of_the_generators_own_is_not_the_breakers_call_timeout():
    b, _ = make(timeout=30.0)

    async def agen():
        yield 1
        raise TimeoutError("the dependency's own")

    async def scenario():
        gen = b(agen)()
        assert await gen.__anext__() == 1
        with pytest.raises(TimeoutError) as raised:
            await gen.__anext__()
        return raised.value

    error = asyncio.run(scenario())
    assert type(error) is TimeoutError and str(error) == "the dependency's own"
    assert b.state == "open"  # still the call's failure
