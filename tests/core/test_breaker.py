"""Behaviour of one breaker on the in-process store, driven by a fake clock."""

import asyncio
import threading

import pytest

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.exceptions import CallTimeout, CircuitOpenError
from resilience.storage.memory.breaker import MemoryBreakerStore


class Upstream4xx(Exception):
    pass


def make(**config):
    clock = FakeClock()
    events = []
    defaults = {"minimum_calls": 4, "open_for": 10, "half_open_calls": 2}
    breaker = CircuitBreaker(
        "dep", BreakerConfig(**{**defaults, **config}), MemoryBreakerStore(clock), clock=clock, emit=events.append
    )
    return breaker, clock, events


def fail():
    raise ConnectionError("down")


def ok():
    return "ok"


def run(breaker, fn, times=1):
    for _ in range(times):
        try:
            breaker.call(fn)
        except ConnectionError:
            pass


async def never_done():
    """An awaitable that never finishes by itself: only a timeout or a cancellation ends it."""
    await asyncio.Event().wait()


def transitions(events):
    return [(e.fields["old_state"], e.fields["new_state"]) for e in events if e.kind == "transition"]


def test_opens_when_failure_rate_reaches_threshold_after_minimum_calls():
    b, _, events = make(failure_rate=50)
    run(b, ok, 2)
    run(b, fail, 1)
    assert b.state == "closed"  # 3 calls < minimum_calls
    run(b, fail, 1)  # 4 calls, 50 %
    assert b.state == "open"
    opened = events[-1]
    assert opened.fields["failure_rate"] == 50.0 and opened.fields["calls"] == 4 and opened.fields["open_for"] == 10


def test_stays_closed_below_the_failure_rate():
    b, _, _ = make(failure_rate=60, minimum_calls=5)
    run(b, ok, 3)
    run(b, fail, 2)
    run(b, ok, 20)
    assert b.state == "closed"


def test_opens_on_slow_call_rate_even_when_calls_succeed():
    b, clock, _ = make(slow_call=1.0, slow_rate=75)

    def slow():
        clock.advance(1.5)
        return "late"

    for _ in range(3):
        b.call(slow)
    b.call(ok)
    assert b.state == "open"


def test_ignored_exceptions_do_not_count_as_failures():
    b, _, _ = make(ignore=(Upstream4xx,))

    def bad_request():
        raise Upstream4xx("404")

    for _ in range(10):
        with pytest.raises(Upstream4xx):
            b.call(bad_request)
    assert b.state == "closed"
    assert b.local_stats().calls == 0


def test_open_breaker_rejects_without_calling_and_says_when_to_retry():
    b, clock, events = make()
    run(b, fail, 4)
    clock.advance(4)
    called = []
    with pytest.raises(CircuitOpenError) as err:
        b.call(lambda: called.append(1))
    assert called == []
    assert err.value.name == "dep" and err.value.retry_after == pytest.approx(6.0)
    assert events[-1].kind == "rejected" and events[-1].fields == {"state": "open", "retry_after": 6.0}


def test_half_open_admits_only_configured_probes():
    b, clock, _ = make(half_open_calls=2)
    run(b, fail, 4)
    clock.advance(10)
    with b, b:  # two probes in flight
        with pytest.raises(CircuitOpenError) as err:
            b.call(ok)
        assert err.value.state == "half_open"
    assert b.state == "closed"


def test_all_probes_succeeding_close_the_breaker_and_clear_old_failures():
    b, clock, events = make()
    run(b, fail, 4)
    clock.advance(10)
    b.call(ok)
    assert b.state == "half_open"
    b.call(ok)
    assert b.state == "closed"
    assert transitions(events) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    run(b, fail, 3)  # a fresh window: three failures are below minimum_calls
    assert b.state == "closed"


def test_a_failing_probe_reopens_with_exponentially_longer_open_for():
    b, clock, events = make(open_for_multiplier=2)
    run(b, fail, 4)
    clock.advance(10)
    run(b, fail, 1)
    assert b.state == "open"
    assert events[-1].fields["open_for"] == 20
    clock.advance(19)
    with pytest.raises(CircuitOpenError):
        b.call(ok)


def test_a_slow_probe_does_not_prove_recovery():
    b, clock, _ = make(slow_call=1.0)
    run(b, fail, 4)
    clock.advance(10)

    def slow():
        clock.advance(2)

    b.call(slow)
    assert b.state == "open"


def test_a_cancelled_probe_releases_its_permit():
    b, clock, _ = make(half_open_calls=1)
    run(b, fail, 4)
    clock.advance(10)

    async def scenario():
        started = asyncio.Event()

        async def hang():
            started.set()
            await never_done()

        task = asyncio.create_task(b.acall(hang))
        await started.wait()
        with pytest.raises(CircuitOpenError):  # the only permit is taken
            await b.acall(asyncio.sleep, 0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await b.acall(asyncio.sleep, 0)  # the permit came back: this probe runs and closes

    asyncio.run(scenario())
    assert b.state == "closed"


def test_results_of_calls_started_under_an_older_generation_change_nothing():
    b, clock, _ = make(minimum_calls=1, failure_rate=100)
    ticket_gate = threading.Event()
    release = threading.Event()

    def slow_failure():
        ticket_gate.set()
        release.wait(5)
        raise ConnectionError("late")

    worker = threading.Thread(target=run, args=(b, slow_failure))
    worker.start()
    ticket_gate.wait(5)
    b.force_open()
    b.reset()  # two generations later, closed again
    release.set()
    worker.join(5)
    assert b.state == "closed"
    assert b.local_stats().calls == 0


def test_sync_timeout_releases_the_caller_and_counts_a_failure():
    b, _, _ = make(timeout=0.05, minimum_calls=1, failure_rate=100)
    release = threading.Event()
    with pytest.raises(CallTimeout) as err:
        b.call(release.wait, 30)  # blocks until released: only the timeout can hand the caller back
    assert not release.is_set()  # the caller is back while the call itself still runs
    release.set()
    assert err.value.name == "dep" and isinstance(err.value, TimeoutError)
    assert b.state == "open"


def test_async_timeout_cancels_the_awaitable_and_counts_a_failure():
    b, _, _ = make(timeout=0.05, minimum_calls=1, failure_rate=100)
    with pytest.raises(CallTimeout):
        asyncio.run(b.acall(never_done))
    assert b.state == "open"


def test_async_with_block_times_out_and_counts_a_failure():
    b, _, _ = make(timeout=0.05, minimum_calls=1, failure_rate=100)

    async def scenario():
        async with b:
            await never_done()

    with pytest.raises(CallTimeout):
        asyncio.run(scenario())
    assert b.state == "open"


def test_sync_with_block_over_its_timeout_is_counted_as_failed():
    b, clock, _ = make(timeout=1.0, minimum_calls=1, failure_rate=100)
    with b:
        clock.advance(2)
    assert b.state == "open"


def test_decorator_protects_sync_and_async_functions():
    b, clock, _ = make()

    @b
    def sync_fail():
        raise ConnectionError

    @b
    async def async_ok():
        return 42

    for _ in range(4):
        with pytest.raises(ConnectionError):
            sync_fail()
    with pytest.raises(CircuitOpenError):
        asyncio.run(async_ok())
    clock.advance(10)
    assert asyncio.run(async_ok()) == 42
    assert sync_fail.__name__ == "sync_fail"


def test_forced_open_rejects_until_reset_with_no_retry_after():
    b, clock, events = make()
    b.force_open(actor="alice")
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError) as err:
        b.call(ok)
    assert err.value.retry_after is None and err.value.state == "forced_open"
    assert events[0].fields["actor"] == "alice" and events[0].fields["new_state"] == "forced_open"
    b.reset()
    assert b.call(ok) == "ok"


def test_disabled_breaker_lets_every_call_through_and_records_nothing():
    b, _, _ = make(minimum_calls=1)
    b.disable()
    run(b, fail, 10)
    assert b.state == "disabled"
    assert b.local_stats().calls == 0


def test_count_window_breaker_trips_over_the_last_n_calls():
    b, _, _ = make(window_type="count", window=5, minimum_calls=5, failure_rate=60)
    run(b, fail, 2)
    run(b, ok, 3)
    run(b, fail, 2)  # last five: ok ok ok fail fail = 40 %
    assert b.state == "closed"
    run(b, fail, 1)  # ok ok fail fail fail = 60 %
    assert b.state == "open"


def test_base_exceptions_like_keyboard_interrupt_are_not_failures():
    b, _, _ = make(minimum_calls=1)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.state == "closed" and b.local_stats().calls == 0
