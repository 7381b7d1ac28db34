import asyncio
import threading

import pytest

from resilience.core.clock import FakeClock
from resilience.core.deadline import ContextThreadPoolExecutor, bounded, check, deadline, remaining, run_in_thread
from resilience.exceptions import ConfigurationError, DeadlineExceeded


def test_no_deadline_means_no_bound():
    assert remaining() is None
    assert bounded(5.0) == 5.0 and bounded(None) is None


def test_nested_deadlines_take_the_earlier():
    clock = FakeClock()
    with deadline(10, clock=clock):
        with deadline(2, clock=clock):
            assert remaining(clock) == 2
        with deadline(30, clock=clock):
            assert remaining(clock) == 10  # an inner deadline can never extend the outer one
        assert remaining(clock) == 10
    assert remaining(clock) is None


def test_remaining_counts_down_and_check_raises_once_passed():
    clock = FakeClock()
    with deadline(1.5, clock=clock):
        clock.advance(1.0)
        assert remaining(clock) == pytest.approx(0.5)
        assert bounded(2.0, clock) == pytest.approx(0.5) and bounded(0.1, clock) == 0.1
        clock.advance(1.0)
        assert remaining(clock) == 0.0
        with pytest.raises(DeadlineExceeded):
            check(clock)


def test_deadline_survives_await_and_is_copied_into_tasks():
    async def child():
        await asyncio.sleep(0)
        return remaining()

    async def main():
        async with deadline(5):
            await asyncio.sleep(0)
            left = await asyncio.create_task(child())
            return left

    assert 4 < asyncio.run(main()) <= 5


def test_threads_started_through_the_library_see_the_deadline():
    seen = {}
    with deadline(5):
        worker = threading.Thread(target=run_in_thread(lambda: seen.setdefault("left", remaining())))
        worker.start()
        worker.join()
        with ContextThreadPoolExecutor(1) as pool:
            pooled = pool.submit(remaining).result()
    assert 4 < seen["left"] <= 5 and 4 < pooled <= 5


def test_plain_threads_do_not_inherit_a_deadline():
    seen = {}
    with deadline(5):
        worker = threading.Thread(target=lambda: seen.setdefault("left", remaining()))
        worker.start()
        worker.join()
    assert seen["left"] is None


@pytest.mark.parametrize("seconds", [float("nan"), "2", None, True])
def test_malformed_deadline_is_a_clear_error(seconds):
    with pytest.raises(ConfigurationError, match="deadline seconds must be a number"):
        deadline(seconds)


@pytest.mark.parametrize(("seconds", "expected"), [(-5, 0.0), (float("inf"), 86_400.0), (1e300, 86_400.0)])
def test_out_of_range_deadlines_are_clamped(seconds, expected):
    clock = FakeClock()
    with deadline(seconds, clock=clock):
        assert remaining(clock) == expected


def test_deeply_nested_deadlines_unwind_cleanly():
    clock = FakeClock()
    managers = [deadline(100 - i * 0.01, clock=clock) for i in range(2000)]
    for m in managers:
        m.__enter__()
    assert remaining(clock) == pytest.approx(100 - 1999 * 0.01)
    for m in reversed(managers):
        m.__exit__(None, None, None)
    assert remaining(clock) is None
