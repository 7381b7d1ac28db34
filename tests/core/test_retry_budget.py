"""LocalRetryBudget: exact counts, the documented defaults and the sliding window's edges."""

from resilience.core.budget import LocalRetryBudget
from resilience.core.clock import FakeClock


def budget(ratio=0.0, floor_per_second=0.0, window=10, start=0.0):
    clock = FakeClock(start)
    return LocalRetryBudget(ratio=ratio, floor_per_second=floor_per_second, window=window, clock=clock), clock


def retries(b, n=30):
    return sum(b.try_retry() for _ in range(n))


def test_the_defaults_are_a_fifth_of_calls_plus_one_retry_a_second_over_ten_seconds():
    b = LocalRetryBudget(clock=FakeClock(0.0))
    assert (b.ratio, b.floor, b.window) == (0.2, 10.0, 10)
    assert retries(b) == 10
    for _ in range(10):
        b.record_call()
    assert retries(b) == 2


def test_the_floor_is_floor_per_second_times_the_window():
    b, _ = budget(floor_per_second=0.5, window=4)
    assert b.floor == 2.0
    assert retries(b) == 2


def test_retries_are_exactly_ratio_times_calls_plus_the_floor():
    b, _ = budget(ratio=0.5, floor_per_second=0.1)
    for _ in range(10):
        b.record_call()
    assert retries(b) == 6  # 0.5 * 10 + 1


def test_a_refused_retry_takes_nothing():
    b, _ = budget(ratio=1.0)
    assert b.try_retry() is False
    b.record_call()
    assert [b.try_retry(), b.try_retry()] == [True, False]


def test_calls_count_for_exactly_the_window_then_expire():
    b, clock = budget(ratio=1.0)
    b.record_call()  # second 0
    clock.now = 9.999
    assert b.try_retry() is True  # the call at second 0 still counts at second 9
    clock.now = 10.0
    b2, clock2 = budget(ratio=1.0)
    b2.record_call()
    clock2.now = 10.0
    assert b2.try_retry() is False  # at second 10 it has left the window


def test_retries_expire_with_the_window_too():
    b, clock = budget(floor_per_second=0.1)  # one retry per window
    assert b.try_retry() is True
    clock.now = 9.5
    assert b.try_retry() is False
    clock.now = 10.0
    assert b.try_retry() is True


def test_calls_in_consecutive_seconds_all_count():
    b, clock = budget(ratio=1.0)
    for second in range(10):
        clock.now = second + 0.5
        b.record_call()
    assert retries(b) == 10


def test_a_jump_longer_than_the_window_forgets_everything():
    b, clock = budget(ratio=1.0)
    for second in range(10):
        clock.now = float(second)
        b.record_call()
    clock.now = 25.0
    assert b.try_retry() is False


def test_a_jump_past_the_window_forgets_the_oldest_bucket_it_reuses():
    b, clock = budget(ratio=1.0)
    clock.now = 6.0
    b.record_call()
    clock.now = 25.0  # bucket 6 is second 16's: older than the window
    assert b.try_retry() is False


def test_a_reading_behind_the_newest_second_counts_in_the_newest_bucket():
    b, clock = budget(ratio=1.0)
    clock.now = 5.0
    b.record_call()
    clock.now = 3.0
    b.record_call()
    clock.now = 14.0
    assert retries(b) == 2  # both in second 5's bucket, still in the window at second 14
    b2, clock2 = budget(ratio=1.0)
    clock2.now = 5.0
    b2.record_call()
    clock2.now = 3.0
    b2.record_call()
    clock2.now = 15.0  # second 5 has left the window, and so has what was counted with it
    assert b2.try_retry() is False


def test_a_clock_starting_at_zero_expires_the_first_second_on_time():
    b, clock = budget(ratio=1.0, start=0.0)
    b.record_call()
    clock.now = 1.0
    b.record_call()
    clock.now = 10.0
    assert retries(b) == 1  # second 1's call only
