"""How one breaker counts and reports: thresholds at their exact edges, a call settled once,
probe timing, a trip whose shared state is lost, and the fields of its events (fake clock)."""

import asyncio
import threading

import pytest

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import State, StateView
from resilience.core.clock import FakeClock
from resilience.core.deadline import deadline
from resilience.exceptions import CallTimeout, CircuitOpenError
from resilience.storage.memory.breaker import MemoryBreakerStore


def make(store=None, **config):
    clock = FakeClock()
    events = []
    defaults = {"minimum_calls": 2, "open_for": 10, "half_open_calls": 1}
    store = store(clock) if store is not None else MemoryBreakerStore(clock)
    breaker = CircuitBreaker("dep", BreakerConfig(**{**defaults, **config}), store, clock=clock, emit=events.append)
    return breaker, clock, events


def fail():
    raise ConnectionError("down")


def failed(breaker, times=1):
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(fail)


def transitions(events):
    return [e.fields for e in events if e.kind == "transition"]


def test_a_failure_rate_just_below_the_threshold_does_not_trip():
    b, _, _ = make(failure_rate=50.5)
    failed(b)
    b.call(lambda: "ok")  # 1 of 2: 50 % < 50.5 %
    assert b.state == "closed"


def test_a_slow_rate_just_below_the_threshold_does_not_trip():
    b, clock, _ = make(slow_call=1.0, slow_rate=50.5)
    b.call(lambda: clock.advance(1.0))
    b.call(lambda: "fast")  # 1 slow of 2: 50 % < 50.5 %
    assert b.state == "closed" and b.local_stats().slow == 1


def test_one_slow_call_in_four_stays_below_a_half_slow_rate():
    b, clock, _ = make(minimum_calls=4, slow_call=1.0, slow_rate=50)
    b.call(lambda: clock.advance(1.0))
    for _ in range(3):
        b.call(lambda: "fast")
    assert b.state == "closed"


def test_a_success_that_reaches_minimum_calls_trips_on_the_hot_path():
    b, _, _ = make(minimum_calls=4, failure_rate=50)
    failed(b, 3)
    assert b.state == "closed"
    b.call(lambda: "ok")  # 3 of 4 failed: the success completes the window
    assert b.state == "open"


def test_a_call_finished_twice_is_counted_once():
    b, _, _ = make(minimum_calls=5)
    ticket = b.admit()
    b.finish(ticket, ConnectionError("down"))
    b.finish(ticket, ConnectionError("down"))
    assert b.local_stats().calls == 1 and ticket.done is True


def open_then_probe(**config):
    b, clock, events = make(**config)
    failed(b, 2)
    clock.advance(10)
    return b, clock, events


def test_a_fast_probe_proves_recovery_even_with_slow_call_set():
    b, clock, _ = open_then_probe(slow_call=1.0)
    b.call(lambda: clock.advance(0.999))
    assert b.state == "closed"


def test_a_probe_that_takes_exactly_slow_call_is_slow_and_reopens():
    b, clock, _ = open_then_probe(slow_call=1.0)
    b.call(lambda: clock.advance(1.0))
    assert b.view().state is State.OPEN


class LosingStore(MemoryBreakerStore):
    """Reports a trip (as the Redis store's local fallback does) but keeps serving the old closed view,
    as when the shared state comes back in the same generation."""

    def __init__(self, clock):
        super().__init__(clock)
        self.trips = 0

    def trip(self, name, config, expected_gen):
        self.trips += 1
        view = self.view(name)
        return State.CLOSED, StateView(State.OPEN, view.gen + 1, self.now() + 10, self.now(), 1)


def test_the_calls_that_tripped_the_breaker_never_trip_it_again_in_the_same_generation():
    b, _, _ = make(store=LosingStore, minimum_calls=2)
    failed(b, 2)
    assert b._store.trips == 1
    failed(b)  # a new window: 1 call is below minimum_calls
    assert b._store.trips == 1 and b.local_stats().calls == 1
    failed(b)
    assert b._store.trips == 2


def test_a_trip_refused_by_the_store_keeps_the_window():
    class RefusingStore(MemoryBreakerStore):
        def trip(self, name, config, expected_gen):
            return None, self.view(name)

    b, _, events = make(store=RefusingStore, minimum_calls=2)
    failed(b, 2)
    assert b.local_stats().calls == 2 and transitions(events) == []


def test_a_trip_event_reports_rates_to_two_decimals_and_open_for_to_the_millisecond():
    b, _, events = make(minimum_calls=3, failure_rate=30, open_for=1.2345)
    failed(b)
    b.call(lambda: "ok")
    b.call(lambda: "ok")  # 1 of 3 failed: 33.33 %
    assert transitions(events) == [
        {
            "old_state": "closed",
            "new_state": "open",
            "reason": "threshold",
            "generation": b.view().gen,
            "failure_rate": 33.33,
            "slow_rate": 0.0,
            "calls": 3,
            "open_for": 1.235,  # 1.2345000000000255 s on the store clock
        }
    ]


def test_a_slow_trip_event_reports_the_slow_rate_to_two_decimals():
    b, clock, events = make(minimum_calls=3, slow_call=1.0, slow_rate=30)
    b.call(lambda: clock.advance(1.0))
    b.call(lambda: "fast")
    b.call(lambda: "fast")
    fields = transitions(events)[0]
    assert (fields["slow_rate"], fields["failure_rate"], fields["calls"]) == (33.33, 0.0, 3)


def test_an_open_for_below_a_second_is_reported_as_it_is():
    b, _, events = make(open_for=0.5)
    failed(b, 2)
    assert transitions(events)[0]["open_for"] == 0.5


def test_a_rejections_retry_after_is_rounded_to_the_millisecond():
    b, clock, events = make()
    failed(b, 2)
    clock.advance(1.23456)
    with pytest.raises(CircuitOpenError) as err:
        b.call(lambda: "never")
    assert err.value.retry_after == 8.765
    assert events[-1].fields == {"state": "open", "retry_after": 8.765}


def test_nested_with_blocks_each_settle_their_own_call():
    b, _, _ = make(minimum_calls=10)
    with pytest.raises(ConnectionError):
        with b:
            with b:
                with b:
                    pass
                raise ConnectionError("middle")
    assert b.local_stats().calls == 3 and b.local_stats().failures == 2  # the middle block and the outer one it escaped


def test_a_with_block_within_or_exactly_at_its_timeout_is_a_success():
    b, clock, _ = make(minimum_calls=10, timeout=1.0)
    with b:
        clock.advance(0.5)
    with b:
        clock.advance(1.0)
    assert b.local_stats().calls == 2 and b.local_stats().failures == 0
    with b:
        clock.advance(1.001)
    assert b.local_stats().failures == 1


class TripCountingStore(MemoryBreakerStore):
    def __init__(self, clock):
        super().__init__(clock)
        self.trips = 0

    def trip(self, name, config, expected_gen):
        self.trips += 1
        return super().trip(name, config, expected_gen)


@pytest.mark.parametrize("op", ["reset", "disable"])
def test_a_call_settled_after_its_generation_ended_asks_the_store_nothing(op):
    b, _, _ = make(store=TripCountingStore, minimum_calls=1)
    ticket = b.admit()
    getattr(b, op)()
    b.finish(ticket, ConnectionError("down"))
    assert b._store.trips == 0 and b.local_stats().calls == 0


def test_any_error_raised_once_the_callers_deadline_has_passed_counts_nothing():
    b, _, _ = make(minimum_calls=1, failure_rate=100)
    with deadline(0):  # on the system clock: passed at once, nothing left
        failed(b, 3)
    assert b.local_stats().calls == 0 and b.state == "closed"
    failed(b)
    assert b.state == "open"


def test_an_async_with_blocks_timeout_error_carries_the_configured_timeout():
    b, _, _ = make(minimum_calls=10, timeout=0.01)

    async def scenario():
        async with b:
            await asyncio.Event().wait()

    with pytest.raises(CallTimeout) as raised:
        asyncio.run(scenario())
    assert (raised.value.name, raised.value.timeout) == ("dep", 0.01)


def test_a_timed_sync_call_runs_in_a_named_daemon_thread_and_is_waited_for():
    b, _, _ = make(minimum_calls=10, timeout=30.0)
    seen = {}

    def work():
        thread = threading.current_thread()
        seen["daemon"], seen["name"] = thread.daemon, thread.name
        return sum(range(2_000_000))  # some work: the caller must wait for it, not find it still running

    assert b.call(work) == sum(range(2_000_000))
    assert seen == {"daemon": True, "name": "breaker-dep"}
    assert b.local_stats().failures == 0


def test_call_totals_count_every_settled_call_by_kind_in_this_process():
    breaker = CircuitBreaker("totals", BreakerConfig(minimum_calls=4, failure_rate=50, window_type="count", window=10,
                                                     ignore=(KeyError,)), MemoryBreakerStore())  # fmt: skip

    def fail(exc):
        raise exc

    for _ in range(3):
        breaker.call(lambda: 1)
    with pytest.raises(KeyError):
        breaker.call(fail, KeyError("ignored by configuration"))
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(fail, ConnectionError())
    assert breaker.state == "open"  # 3 of 6 counted calls failed
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)  # not permitted: an event, not a settled call
    assert breaker.call_totals() == (3, 3, 1)
