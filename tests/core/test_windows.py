from resilience.core.windows import CountWindow, TimeWindow


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
