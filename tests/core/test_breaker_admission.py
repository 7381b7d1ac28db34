"""How one breaker decides and what it asks of its store: local rejections, permit lifetimes, stats."""

import asyncio

import pytest

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.core.deadline import deadline
from resilience.core.windows import WindowSnapshot
from resilience.exceptions import CallTimeout, CircuitOpenError, DeadlineExceeded
from resilience.storage.memory.breaker import MemoryBreakerStore


class CountingStore(MemoryBreakerStore):
    """The in-process store, recording every ``acquire`` with the permit lifetime it was given."""

    def __init__(self, clock):
        super().__init__(clock)
        self.acquired: list[float] = []

    def acquire(self, name, config, permit_id, permit_ttl):
        self.acquired.append(permit_ttl)
        return super().acquire(name, config, permit_id, permit_ttl)


def make(start=1000.0, **config):
    clock = FakeClock(start)
    store = CountingStore(clock)
    defaults = {"minimum_calls": 2, "failure_rate": 50, "open_for": 10, "half_open_calls": 1}
    breaker = CircuitBreaker("dep", BreakerConfig(**{**defaults, **config}), store, clock=clock)
    return breaker, clock, store


def fail():
    raise ConnectionError("down")


def trip(breaker):
    for _ in range(breaker.config.minimum_calls):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert breaker.view().state.value == "open"


def test_an_open_breaker_rejects_locally_while_the_open_period_clearly_runs():
    b, clock, store = make()
    trip(b)
    clock.advance(9.5)
    with pytest.raises(CircuitOpenError) as err:
        b.call(lambda: "never")
    assert err.value.retry_after == 0.5
    assert store.acquired == []  # no store round trip for a rejection that is certain


def test_in_the_last_50_ms_of_the_open_period_the_store_decides():
    b, clock, store = make(start=0.0, open_for=0.1)
    trip(b)  # open until 0.1 on the store clock
    clock.advance(0.05)  # 0.05 s left: not clearly open any more
    with pytest.raises(CircuitOpenError) as err:
        b.call(lambda: "never")
    assert err.value.retry_after == 0.05
    assert len(store.acquired) == 1


def test_the_breaker_reports_half_open_at_the_instant_the_open_period_ends():
    b, clock, _ = make()
    trip(b)
    clock.advance(9.999)
    assert b.state == "open"
    clock.advance(0.001)
    assert b.state == "half_open"  # the next call will probe
    assert b.view().state.value == "open"  # nothing changed in the store yet


@pytest.mark.parametrize(
    ("config", "ttl"),
    [
        ({"open_for": 10}, 20.0),  # twice the open period
        ({"open_for": 100}, 120.0),  # the open period counts up to a minute
        ({"open_for": 0.1}, 2.0),  # at least a second, twice
        ({"open_for": 10, "timeout": 30}, 60.0),  # a probe may run for its whole timeout
        ({"open_for": 10, "slow_call": 45}, 90.0),  # or until it would count as slow
    ],
)
def test_a_probe_permit_lives_twice_the_longest_a_probe_can_legitimately_take(config, ttl):
    b, clock, store = make(**config)
    trip(b)
    clock.advance(b.config.open_for)
    b.call(lambda: "probe")
    assert store.acquired == [ttl]


def test_a_half_open_rejection_says_to_retry_when_the_probe_permit_expires():
    b, clock, _ = make(open_for=10)
    trip(b)
    clock.advance(10)
    with b:  # the only probe, holding a permit for 20 s
        clock.advance(5)
        with pytest.raises(CircuitOpenError) as err:
            b.call(lambda: "second probe")
    assert (err.value.state, err.value.retry_after) == ("half_open", 15.0)


def test_stats_are_the_local_window_when_the_store_shares_none():
    b, _, _ = make(minimum_calls=10)
    b.call(lambda: "ok")
    with pytest.raises(ConnectionError):
        b.call(fail)
    assert b.stats() == WindowSnapshot(2, 1, 0) == b.local_stats()


def test_the_calls_that_opened_the_breaker_are_not_its_stats_any_more():
    b, _, _ = make()
    trip(b)
    assert b.local_stats() == WindowSnapshot(0, 0, 0)
    assert b.stats() == WindowSnapshot(0, 0, 0)


def test_a_time_window_breaker_forgets_calls_older_than_its_window():
    b, clock, _ = make(minimum_calls=3, window=60)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(fail)
    clock.advance(60)
    assert b.local_stats() == WindowSnapshot(0, 0, 0)
    with pytest.raises(ConnectionError):
        b.call(fail)
    assert b.view().state.value == "closed"  # one failure in the window, not three


def test_an_async_with_block_without_a_timeout_counts_its_outcome():
    b, _, _ = make(minimum_calls=2, failure_rate=50)

    async def scenario():
        async with b:
            pass
        assert b.local_stats() == WindowSnapshot(1, 0, 0)
        with pytest.raises(ConnectionError):
            async with b:
                fail()

    asyncio.run(scenario())
    assert b.view().state.value == "open"


class Upstream4xx(Exception):
    pass


def test_ignoring_some_exceptions_still_counts_every_other_failure():
    b, _, _ = make(ignore=(Upstream4xx,))
    trip(b)  # two ConnectionErrors: not ignored


def test_a_call_cut_by_the_callers_deadline_counts_nothing():
    b, _, _ = make(minimum_calls=1, failure_rate=100)

    def cut():
        raise DeadlineExceeded()

    for _ in range(3):
        with pytest.raises(DeadlineExceeded):
            b.call(cut)
    assert b.local_stats() == WindowSnapshot(0, 0, 0) and b.view().state.value == "closed"


def test_a_call_cut_by_the_deadline_after_running_for_slow_call_counts_as_slow_only():
    b, clock, _ = make(minimum_calls=5, slow_call=1.0)

    def cut_after(seconds):
        def fn():
            clock.advance(seconds)
            raise DeadlineExceeded()

        return fn

    with pytest.raises(DeadlineExceeded):
        b.call(cut_after(0.5))  # not slow yet: no evidence either way
    assert b.local_stats() == WindowSnapshot(0, 0, 0)
    with pytest.raises(DeadlineExceeded):
        b.call(cut_after(1.0))
    assert b.local_stats() == WindowSnapshot(1, 0, 1)  # a slow success, never a failure


def test_a_breakers_own_timeout_is_a_failure_even_with_no_time_left_on_the_deadline():
    b, _, _ = make(minimum_calls=1, failure_rate=100)

    def timed_out():
        raise CallTimeout("dep", 1.0)

    with deadline(0.0), pytest.raises(CallTimeout):
        b.call(timed_out)
    assert b.view().state.value == "open"


def test_a_call_that_takes_exactly_slow_call_is_slow():
    b, clock, _ = make(minimum_calls=5, slow_call=1.0)
    b.call(lambda: clock.advance(0.999))
    b.call(lambda: clock.advance(1.0))
    assert b.local_stats() == WindowSnapshot(2, 0, 1)
