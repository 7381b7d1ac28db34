"""Deadline objects at their edges: clamping, exit, async exit, bounded(), check() just before the end."""

import asyncio

import pytest

from resilience.core.clock import FakeClock
from resilience.core.deadline import MAX_SECONDS, bounded, check, deadline, remaining
from resilience.exceptions import DeadlineExceeded


def test_seconds_are_clamped_to_zero_and_a_day():
    assert MAX_SECONDS == 86_400.0
    assert deadline(-5).seconds == 0.0
    assert deadline(0.25).seconds == 0.25
    assert deadline(86_400).seconds == 86_400.0
    assert deadline(86_401).seconds == 86_400.0


def test_entering_sets_the_absolute_end_on_the_monotonic_clock():
    clock = FakeClock(500.0)
    with deadline(2.5, clock=clock) as d:
        assert d.at == 502.5 and remaining(clock) == 2.5
    assert remaining(clock) is None


def test_an_inner_deadline_at_the_same_end_keeps_it():
    clock = FakeClock()
    with deadline(3, clock=clock) as outer, deadline(3, clock=clock) as inner:
        assert inner.at == outer.at == 1003.0


def test_a_deadline_not_entered_has_no_time_left():
    d = deadline(5, clock=FakeClock(0.0))
    assert d.at == 0.0 and d.remaining() == 0.0


def test_the_deadlines_own_remaining_counts_down_to_zero_and_stays_there():
    clock = FakeClock()
    with deadline(2, clock=clock) as d:
        clock.advance(0.5)
        assert d.remaining() == 1.5
        clock.advance(5)
        assert d.remaining() == 0.0


def test_exiting_twice_or_without_entering_is_harmless():
    clock = FakeClock()
    d = deadline(2, clock=clock)
    d.__exit__(None, None, None)
    with deadline(10, clock=clock):
        d.__enter__()
        assert remaining(clock) == 2.0
        d.__exit__(None, None, None)
        d.__exit__(None, None, None)
        assert remaining(clock) == 10.0


def test_async_exit_restores_the_outer_deadline():
    clock = FakeClock()

    async def main():
        async with deadline(1, clock=clock):
            inside = remaining(clock)
        return inside, remaining(clock)

    assert asyncio.run(main()) == (1.0, None)


def test_bounded_without_a_timeout_is_what_is_left():
    clock = FakeClock()
    with deadline(4, clock=clock):
        clock.advance(1)
        assert bounded(None, clock) == 3.0
        assert bounded(10.0, clock) == 3.0
        assert bounded(2.0, clock) == 2.0


def test_check_does_not_raise_with_time_left_however_little():
    clock = FakeClock()
    with deadline(1, clock=clock):
        clock.advance(0.5)
        assert check(clock) is None
        clock.advance(0.4999)
        assert check(clock) is None
        clock.advance(0.0001)
        with pytest.raises(DeadlineExceeded):
            check(clock)


def test_remaining_after_the_end_is_zero_not_negative():
    clock = FakeClock()
    with deadline(1, clock=clock):
        clock.advance(3)
        assert remaining(clock) == 0.0
