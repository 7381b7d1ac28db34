"""The shared state machine rule by rule, on one ``StateRecord`` with explicit times.

The Hypothesis machine (``test_breaker_state_machine``) checks random walks against a model; these
pin the edges it rarely reaches: permits outliving a transition, exact retry times, exact boundaries.
"""

import pytest

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Outcome, State, StateRecord, StateView, next_generation

CONFIG = BreakerConfig(open_for=10, half_open_calls=2)
LONG = 1_000.0  # a permit lifetime far longer than anything below: only a transition can free it


def opened(now=100.0, config=CONFIG):
    record = StateRecord()
    assert record.trip(now, config, record.view.gen) is State.CLOSED
    return record


def half_open(now=110.0, config=CONFIG):
    """A breaker opened at 100 s whose open period has just run out; the first probe, p1, is admitted."""
    record = opened(now - config.open_for, config)
    decision = record.acquire(now, config, "p1", LONG)
    assert (decision.allowed, decision.probe, decision.changed_from) == (True, True, State.OPEN)
    return record


def test_every_transition_clears_the_half_open_permits():
    record = half_open()
    assert record.acquire(110.0, CONFIG, "p2", LONG).probe  # both probes in flight, each for 1,000 s
    assert record.release(111.0, CONFIG, record.view.gen, "p1", Outcome.FAILURE) is State.HALF_OPEN
    assert record.permits == {}  # p2's permit belongs to the half-open period that just ended
    assert record.acquire(121.0, CONFIG, "p3", LONG).probe
    assert record.acquire(121.0, CONFIG, "p4", LONG).probe  # two fresh probes, not one beside p2's ghost


def test_a_manual_reset_clears_the_permits_too():
    record = half_open()
    record.manual(111.0, "reset")
    assert (record.view.state, record.permits, record.half_open_ok) == (State.CLOSED, {}, 0)


def test_every_transition_resets_the_count_of_successful_probes():
    record = half_open()
    assert record.release(110.5, CONFIG, record.view.gen, "p1", Outcome.SUCCESS) is None
    assert record.half_open_ok == 1
    record.manual(111.0, "force_open")
    assert record.half_open_ok == 0
    record.manual(112.0, "reset")
    assert record.trip(112.0, CONFIG, record.view.gen) is State.CLOSED
    assert record.acquire(122.0, CONFIG, "p2", LONG).probe
    assert record.acquire(122.0, CONFIG, "p3", LONG).probe  # two probes again: the old success is gone


def test_a_half_open_rejection_says_when_the_soonest_permit_expires():
    record = opened()
    record.acquire(110.0, CONFIG, "p1", 30.0)
    record.acquire(112.0, CONFIG, "p2", 20.0)  # expires at 132, before p1 (140)
    rejected = record.acquire(115.0, CONFIG, "p3", 30.0)
    assert (rejected.allowed, rejected.probe, rejected.retry_after) == (False, False, pytest.approx(17.0))
    assert rejected.changed_from is None and rejected.view.state is State.HALF_OPEN


def test_a_half_open_rejection_never_asks_to_retry_in_less_than_a_millisecond():
    record = opened()
    record.acquire(110.0, CONFIG, "p1", 0.0004)
    record.acquire(110.0, CONFIG, "p2", 0.0004)
    assert record.acquire(110.0001, CONFIG, "p3", 1.0).retry_after == 0.001


def test_a_permit_is_free_again_at_the_instant_it_expires():
    record = opened()
    record.acquire(110.0, CONFIG, "p1", 5.0)
    record.acquire(110.0, CONFIG, "p2", 5.0)
    assert not record.acquire(114.999, CONFIG, "p3", 5.0).allowed
    assert record.acquire(115.0, CONFIG, "p3", 5.0).probe
    assert set(record.permits) == {"p3"}  # the expired ones were dropped, not just ignored


def test_an_open_breaker_rejects_until_open_until_and_probes_at_that_instant():
    record = opened(100.0)
    early = record.acquire(109.5, CONFIG, "p1", LONG)
    assert (early.allowed, early.retry_after, early.changed_from) == (False, pytest.approx(0.5), None)
    assert record.view.state is State.OPEN and record.permits == {}
    assert record.acquire(110.0, CONFIG, "p1", LONG).probe


def test_opening_records_when_it_ends_and_the_consecutive_trips():
    config = BreakerConfig(open_for=10, open_for_multiplier=2, half_open_calls=1)
    record = opened(100.0, config)
    assert (record.view.open_until, record.view.since, record.view.trips) == (110.0, 100.0, 1)
    record.acquire(110.0, config, "p1", LONG)
    record.release(111.0, config, record.view.gen, "p1", Outcome.FAILURE)
    assert (record.view.open_until, record.view.since, record.view.trips) == (131.0, 111.0, 2)


def test_all_probes_succeeding_close_and_forget_the_trips():
    record = half_open()
    record.acquire(110.0, CONFIG, "p2", LONG)
    gen = record.view.gen
    assert record.release(111.0, CONFIG, gen, "p1", Outcome.SUCCESS) is None
    assert record.release(112.0, CONFIG, gen, "p2", Outcome.SUCCESS) is State.HALF_OPEN
    assert (record.view.state, record.view.trips, record.view.since) == (State.CLOSED, 0, 112.0)


def test_a_cancelled_probe_hands_its_permit_back_and_counts_nothing():
    record = half_open()
    assert record.release(111.0, CONFIG, record.view.gen, "p1", Outcome.CANCEL) is None
    assert (record.view.state, record.permits, record.half_open_ok) == (State.HALF_OPEN, {}, 0)


def test_a_permit_of_another_generation_or_an_unknown_permit_changes_nothing():
    record = half_open()
    gen = record.view.gen
    assert record.release(111.0, CONFIG, gen - 1, "p1", Outcome.FAILURE) is None
    assert record.permits == {}  # popped all the same: a stale permit never blocks a probe
    assert record.release(111.0, CONFIG, gen, "never-issued", Outcome.FAILURE) is None
    assert record.view.state is State.HALF_OPEN and record.view.gen == gen


def test_a_trip_of_a_breaker_that_is_not_closed_changes_nothing():
    record = opened()
    assert record.trip(101.0, CONFIG, record.view.gen) is None
    assert record.view.trips == 1


def test_forced_open_rejects_with_no_retry_after_and_disabled_admits_without_a_probe():
    record = StateRecord()
    record.manual(1.0, "force_open")
    forced = record.acquire(2.0, CONFIG, "p1", LONG)
    assert (forced.allowed, forced.probe, forced.retry_after) == (False, False, None)
    record.manual(3.0, "disable")
    disabled = record.acquire(4.0, CONFIG, "p2", LONG)
    assert (disabled.allowed, disabled.probe, disabled.retry_after) == (True, False, None)
    assert record.permits == {}


def test_a_manual_reset_forgets_the_trips_and_force_open_keeps_them():
    record = opened()
    record.manual(101.0, "force_open")
    assert record.view.trips == 1
    record.manual(102.0, "reset")
    assert record.view.trips == 0


def test_generations_are_above_the_previous_and_at_least_the_clock_in_microseconds():
    assert next_generation(5, 0.000_003) == 6
    assert next_generation(5, 0.000_007) == 7
    assert next_generation(-1, 2.5) == 2_500_000


def test_a_fresh_record_is_closed_in_a_generation_never_seen_before():
    record = StateRecord.fresh(3.0, after=10_000_000)
    assert record.view == StateView(State.CLOSED, 10_000_001, 0.0, 0.0, 0)
    assert StateRecord.fresh(3.0).view.gen == 3_000_000


def test_a_fresh_record_at_clock_zero_starts_at_generation_zero():
    assert StateRecord.fresh(0.0).view.gen == 0


def test_only_an_open_view_has_an_end():
    record = half_open()
    assert record.view.open_until == 0.0
    record.manual(111.0, "reset")
    assert record.view.open_until == 0.0


def test_a_record_built_in_half_open_starts_with_no_successful_probes():
    record = StateRecord(StateView(State.HALF_OPEN, gen=7))
    config = BreakerConfig(half_open_calls=1)
    assert record.half_open_ok == 0
    decision = record.acquire(10.0, config, "p1", 5.0)
    assert (decision.allowed, decision.probe) == (True, True)
