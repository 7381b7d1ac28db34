"""State timelines from transitions: fixed buckets, the most severe state per bucket, merged runs."""

import random

import pytest

from resilience.observability.timeline import WIDTH, Transition, segments, state_at_start, ticks

HOUR = 3600.0


def test_a_breaker_that_never_changed_is_one_segment_over_the_whole_range():
    [only] = segments([], 0.0, 24 * HOUR, "closed", buckets=96)
    assert (only.start, only.end, only.state, only.transitions) == (0.0, 24 * HOUR, "closed", 0)
    assert (only.x, only.width) == (0.0, WIDTH)


def test_segments_follow_transitions_and_cover_the_range_without_gaps():
    events = [
        Transition(6 * HOUR, "closed", "open"),
        Transition(12 * HOUR, "open", "half_open"),
        Transition(12 * HOUR + 60, "half_open", "closed"),
    ]
    bars = segments(events, 0.0, 24 * HOUR, "closed", buckets=24)
    assert [(b.state, b.start / HOUR, b.end / HOUR) for b in bars] == [("closed", 0, 6), ("open", 6, 13), ("closed", 13, 24)]
    assert sum(b.transitions for b in bars) == 3
    assert bars[1].states == ("open", "half_open", "closed")  # the 12-13 h bucket held all three
    assert all(a.end == b.start for a, b in zip(bars, bars[1:], strict=False))
    assert sum(b.width for b in bars) == pytest.approx(WIDTH)


def test_a_short_trip_inside_a_bucket_shows_as_the_whole_bucket_open():
    events = [
        Transition(3 * HOUR + 10, "closed", "open"),
        Transition(3 * HOUR + 40, "open", "half_open"),
        Transition(3 * HOUR + 41, "half_open", "closed"),
    ]
    bars = segments(events, 0.0, 24 * HOUR, "closed", buckets=24)
    assert [(b.state, b.start / HOUR, b.end / HOUR, b.transitions) for b in bars] == [
        ("closed", 0, 3, 0),
        ("open", 3, 4, 3),
        ("closed", 4, 24, 0),
    ]


def test_forced_open_and_disabled_rank_below_an_automatic_trip_and_above_closed():
    events = [
        Transition(10, "closed", "disabled"),
        Transition(20, "disabled", "forced_open"),
        Transition(30, "forced_open", "open"),
    ]
    assert [b.state for b in segments(events[:1], 0.0, 100.0, "closed", buckets=1)] == ["disabled"]
    assert [b.state for b in segments(events[:2], 0.0, 100.0, "closed", buckets=1)] == ["forced_open"]
    assert [b.state for b in segments(events, 0.0, 100.0, "closed", buckets=1)] == ["open"]


def test_transitions_outside_the_range_are_ignored():
    events = [Transition(-5, "closed", "open"), Transition(50, "open", "closed"), Transition(100, "closed", "open")]
    bars = segments(events, 0.0, 100.0, "open", buckets=10)
    assert [(b.state, b.start, b.end) for b in bars] == [("open", 0, 60), ("closed", 60, 100)]


def test_ten_thousand_flapping_transitions_draw_as_at_most_one_bar_per_bucket():
    rng = random.Random(7)
    times = sorted(rng.uniform(0, 7 * 24 * HOUR) for _ in range(10_000))
    states = ["closed", "open", "half_open"]
    events = [Transition(t, states[i % 3], states[(i + 1) % 3]) for i, t in enumerate(times)]
    bars = segments(events, 0.0, 7 * 24 * HOUR, "closed", buckets=168)
    assert len(bars) <= 168
    assert sum(b.transitions for b in bars) == 10_000


def test_the_state_at_the_start_comes_from_the_last_earlier_transition_else_the_first_inside_else_now():
    earlier, inside = Transition(-1, "closed", "forced_open"), Transition(5, "open", "closed")
    assert state_at_start(earlier, inside, "closed") == "forced_open"
    assert state_at_start(None, inside, "closed") == "open"
    assert state_at_start(None, None, "disabled") == "disabled"


def test_a_range_without_length_or_buckets_is_an_error():
    with pytest.raises(ValueError):
        segments([], 10.0, 10.0, "closed")
    with pytest.raises(ValueError):
        segments([], 0.0, 10.0, "closed", buckets=0)


def test_ticks_fall_on_whole_local_hours_inside_the_range():
    start = 1_000_000_000.0 + 1234  # not on an hour
    marks = ticks(start, start + 24 * HOUR, 3 * HOUR, offset=2 * HOUR)
    assert len(marks) == 8
    assert all((m.at + 2 * HOUR) % (3 * HOUR) == 0 for m in marks)
    assert all(0 < m.x < WIDTH for m in marks)
