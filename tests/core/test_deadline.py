import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

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
    clock = FakeClock()

    async def child():
        await asyncio.sleep(0)
        return remaining(clock)

    async def main():
        async with deadline(5, clock=clock):
            await asyncio.sleep(0)
            clock.advance(1)
            left = await asyncio.create_task(child())
            return left

    assert asyncio.run(main()) == 4


def test_threads_started_through_the_library_see_the_deadline():
    seen = {}
    clock = FakeClock()
    with deadline(5, clock=clock):
        worker = threading.Thread(target=run_in_thread(lambda: seen.setdefault("left", remaining(clock))))
        worker.start()
        worker.join()
        with ContextThreadPoolExecutor(1) as pool:
            pooled = pool.submit(remaining, clock).result()
    assert seen["left"] == 5 and pooled == 5


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


def test_one_wrapped_function_runs_in_two_threads_at_once_each_with_the_deadline():
    """Before: both calls entered the one copied context; the second raised RuntimeError."""
    both_inside = threading.Barrier(2, timeout=5)  # each call is inside the wrapper when the other starts

    clock = FakeClock()

    def work():
        both_inside.wait()
        return remaining(clock)

    with deadline(5, clock=clock):
        wrapped = run_in_thread(work)
    with ThreadPoolExecutor(2) as pool:  # a plain pool: only the wrapper carries the deadline
        calls = [pool.submit(wrapped) for _ in range(2)]
        seen = [call.result(timeout=10) for call in calls]
    assert seen == [5, 5]


def test_each_call_of_a_wrapped_function_starts_from_the_callers_context():
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

    clock = FakeClock()

    def work():
        before = marker.get()
        marker.set("set by a call")
        return before, remaining(clock)

    with deadline(5, clock=clock):
        wrapped = run_in_thread(work)
    first, second = wrapped(), wrapped()
    assert first[0] == second[0] == "unset"  # nothing one call sets leaks into the next
    assert first[1] == second[1] == 5


def test_check_without_a_deadline_never_raises():
    assert check() is None


def test_async_with_deadline_binds_the_deadline_object():
    clock = FakeClock()

    async def main():
        async with deadline(3, clock=clock) as d:
            clock.advance(1)
            return d.at, d.remaining(), remaining(clock)

    at, left, seen = asyncio.run(main())
    assert at == clock.monotonic() - 1 + 3 and left == 2 and seen == 2
    assert remaining(clock) is None  # left the context
