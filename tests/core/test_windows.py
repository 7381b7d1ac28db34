from resilience.core.windows import CountWindow, TimeWindow, WindowSnapshot


def test_count_window_keeps_only_the_last_n_calls():
    w = CountWindow(3)
    for failure in (True, True, False, False, False):
        w.record(0, failure, False)
    snap = w.snapshot(0)
    assert (snap.calls, snap.failures, snap.slow) == (3, 0, 0)


def test_count_window_rates_are_percentages():
    w = CountWindow(4)
    for failure, slow in ((True, False), (False, True), (False, True), (False, False)):
        w.record(0, failure, slow)
    snap = w.snapshot(0)
    assert snap.failure_rate == 25.0 and snap.slow_rate == 50.0


def test_time_window_evicts_seconds_older_than_its_length():
    w = TimeWindow(10)
    w.record(100.0, True, False)
    w.record(105.5, False, True)
    assert w.snapshot(109.9).calls == 2
    snap = w.snapshot(110.0)  # second 100 left the window
    assert (snap.calls, snap.failures, snap.slow) == (1, 0, 1)
    assert w.snapshot(200.0).calls == 0


def test_time_window_jump_longer_than_window_clears_everything():
    w = TimeWindow(5)
    for t in range(5):
        w.record(float(t), True, True)
    w.record(1000.0, False, False)
    snap = w.snapshot(1000.0)
    assert (snap.calls, snap.failures, snap.slow) == (1, 0, 0)


def test_time_window_counts_a_late_timestamp_in_the_newest_bucket():
    w = TimeWindow(3)
    w.record(10.0, False, False)
    w.record(5.0, True, False)  # a racing thread with an older reading
    assert w.snapshot(10.0).failures == 1
    assert w.snapshot(13.0).calls == 0


def test_empty_window_rates_are_zero():
    assert CountWindow(5).snapshot(0).failure_rate == 0.0
    assert TimeWindow(5).snapshot(0).slow_rate == 0.0


def test_a_count_window_evicts_slow_calls_like_any_other():
    w = CountWindow(2)
    w.record(0, False, True)
    w.record(0, True, True)
    assert w.record(0, False, False) == (2, 1, 1)  # the first slow call left the window
    assert w.record(0, False, False) == (2, 0, 0)  # and the slow failure with it


def test_a_count_window_evicting_a_slow_success_keeps_the_failures_and_evicting_a_failure_keeps_the_slow():
    w = CountWindow(1)
    w.record(0, True, False)
    assert w.record(0, False, True) == (1, 0, 1)
    assert w.record(0, True, False) == (1, 1, 0)


def test_a_count_window_of_n_wraps_after_exactly_n_calls():
    w = CountWindow(3)
    assert [w.record(0, True, False) for _ in range(3)] == [(1, 1, 0), (2, 2, 0), (3, 3, 0)]
    assert w.record(0, False, False) == (3, 2, 0)  # the fourth call replaces the first
    assert w.snapshot(0) == WindowSnapshot(3, 2, 0)


def test_a_time_window_given_an_older_reading_than_its_newest_evicts_nothing():
    w = TimeWindow(10)
    w.record(100.0, True, False)
    w.record(109.0, False, False)
    assert w.snapshot(105.0) == WindowSnapshot(2, 1, 0)  # an older clock reading never moves the window back
    assert w.snapshot(109.9) == WindowSnapshot(2, 1, 0)
    assert w.snapshot(110.0) == WindowSnapshot(1, 0, 0)


def test_a_late_call_lands_in_the_newest_bucket_and_leaves_with_it():
    w = TimeWindow(3)
    w.record(10.0, False, False)
    w.record(12.0, False, False)
    assert w.record(10.5, True, True) == (3, 1, 1)  # second 10 is still in the window, but the call goes to 12
    assert w.snapshot(13.0) == WindowSnapshot(2, 1, 1)  # second 10 left; the late call stays with second 12
    assert w.snapshot(15.0) == WindowSnapshot(0, 0, 0)


def test_a_time_window_moving_one_second_evicts_exactly_the_oldest_second():
    w = TimeWindow(3)
    for t, failure in ((10.0, True), (11.0, False), (12.0, True)):
        w.record(t, failure, not failure)
    assert w.snapshot(12.5) == WindowSnapshot(3, 2, 1)
    assert w.snapshot(13.0) == WindowSnapshot(2, 1, 1)
    assert w.snapshot(14.0) == WindowSnapshot(1, 1, 0)


def test_a_time_window_counts_the_very_first_second_of_the_clock():
    w = TimeWindow(10)
    w.record(0.5, True, False)
    assert w.snapshot(9.9) == WindowSnapshot(1, 1, 0)
    assert w.snapshot(10.0) == WindowSnapshot(0, 0, 0)


def test_rates_are_exact_percentages():
    snap = WindowSnapshot(8, 2, 6)
    assert (snap.failure_rate, snap.slow_rate) == (25.0, 75.0)
