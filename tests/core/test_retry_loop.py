"""The retry loop's edges: exact bounds, the delay handed to the backoff, events, budgets, Retry-After."""

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from resilience.core.backoff import Constant
from resilience.core.budget import LocalRetryBudget
from resilience.core.clock import FakeClock
from resilience.core.deadline import deadline
from resilience.core.event import Event
from resilience.core.retry import Retrying, RetryPolicy, retry_after, transient
from resilience.exceptions import ConfigurationError

from .test_retry import Harness as RetryHarness


class Harness(RetryHarness):
    """test_retry's harness; ``reasons()`` is its ``kinds()``, as these tests name it."""

    def reasons(self):
        return self.kinds()


def failing(exc=ConnectionError, times=100):
    calls = []

    def fn(*args, **kwargs):
        calls.append((args, kwargs))
        if len(calls) <= times:
            raise exc("down")
        return len(calls)

    fn.calls = calls
    return fn


def afailing(exc=ConnectionError, times=100):
    sync = failing(exc, times)

    async def fn(*args, **kwargs):
        return sync(*args, **kwargs)

    fn.calls = sync.calls
    return fn


class Recorder:
    """A backoff that answers 0.5, 1.5, 2.5, ... and records what it was asked."""

    def __init__(self):
        self.asked = []

    def __call__(self, attempt, previous, rng):
        self.asked.append((attempt, previous))
        return attempt - 0.5


def test_a_policy_defaults_to_three_attempts_without_time_bounds_or_budget():
    p = RetryPolicy()
    assert (p.name, p.attempts, p.max_time, p.attempt_timeout, p.budget) == ("custom", 3, None, None, None)
    assert p.retry_on is transient and p.stop_if is None


def test_only_connection_and_timeout_errors_are_transient():
    assert transient(ConnectionRefusedError()) and transient(TimeoutError())
    assert not transient(ValueError()) and not transient(OSError())


def test_the_backoff_is_asked_with_each_attempt_number_and_the_previous_delay():
    backoff = Recorder()
    h = Harness(attempts=4, backoff=backoff)
    with pytest.raises(ConnectionError):
        h.retrying.call(failing())
    assert backoff.asked == [(1, 0.0), (2, 0.5), (3, 1.5)]
    assert h.sleeps == [0.5, 1.5, 2.5]


def test_async_the_backoff_is_asked_with_each_attempt_number_and_the_previous_delay():
    backoff = Recorder()
    h = Harness(attempts=4, backoff=backoff)
    with pytest.raises(ConnectionError):
        asyncio.run(h.retrying.acall(afailing()))
    assert backoff.asked == [(1, 0.0), (2, 0.5), (3, 1.5)]
    assert h.sleeps == [0.5, 1.5, 2.5]


def test_arguments_reach_every_attempt():
    fn = failing(times=1)
    h = Harness(attempts=2)
    assert h.retrying.call(fn, 1, k=2) == 2
    assert fn.calls == [((1,), {"k": 2})] * 2
    afn = afailing(times=1)
    assert asyncio.run(h.retrying.acall(afn, 3, k=4)) == 2
    assert afn.calls == [((3,), {"k": 4})] * 2


def test_each_retry_and_the_give_up_are_events_with_attempt_delay_and_error():
    h = Harness(attempts=3, backoff=Constant(1.23456), name="api")
    with pytest.raises(ConnectionError):
        h.retrying.call(failing())
    assert h.events == [
        Event("retry", "retry", "api", {"attempt": 1, "delay": 1.2346, "error": "ConnectionError"}),
        Event("retry", "retry", "api", {"attempt": 2, "delay": 1.2346, "error": "ConnectionError"}),
        Event("retry", "give_up", "api", {"attempt": 3, "reason": "attempts", "error": "ConnectionError"}),
    ]


def test_one_attempt_means_no_retry():
    h = Harness(attempts=1)
    fn = failing()
    with pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert len(fn.calls) == 1 and h.reasons() == [("give_up", "attempts")]


def test_async_gives_up_after_the_attempts():
    h = Harness(attempts=3)
    fn = afailing()
    with pytest.raises(ConnectionError):
        asyncio.run(h.retrying.acall(fn))
    assert len(fn.calls) == 3 and h.sleeps == [1.0, 1.0]
    assert h.reasons()[-1] == ("give_up", "attempts")


def test_a_wait_ending_exactly_at_max_time_is_still_taken():
    h = Harness(attempts=10, max_time=2.0)
    with pytest.raises(ConnectionError):
        h.retrying.call(failing())
    assert h.sleeps == [1.0, 1.0]
    assert h.events[-1] == Event("retry", "give_up", "custom", {"attempt": 3, "reason": "max_time", "error": "ConnectionError"})


def test_async_max_time_counts_from_the_first_call():
    h = Harness(attempts=10, max_time=2.5)
    h.clock.now = 5000.0
    with pytest.raises(ConnectionError):
        asyncio.run(h.retrying.acall(afailing()))
    assert h.sleeps == [1.0, 1.0] and h.reasons()[-1] == ("give_up", "max_time")


def test_a_wait_as_long_as_what_is_left_of_the_deadline_is_not_taken():
    h = Harness(attempts=10, backoff=Constant(2.0))
    fn = failing()
    with deadline(2.0, clock=h.clock), pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert h.sleeps == [] and len(fn.calls) == 1
    assert h.reasons() == [("give_up", "deadline")]


def test_a_shorter_retry_after_than_the_backoff_does_not_shorten_the_wait():
    class Throttled(ConnectionError):
        retry_after = 0.25

    h = Harness(attempts=2)
    assert h.retrying.call(failing(Throttled, times=1)) == 2
    assert h.sleeps == [1.0]


def test_errors_that_are_not_exceptions_are_never_retried():
    h = Harness(attempts=5, retry_on=lambda e: True)
    fn = failing(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        h.retrying.call(fn)
    assert len(fn.calls) == 1 and h.events == []


def test_stop_if_is_asked_before_each_retry_and_only_stops_when_true():
    answers = iter([False, True])
    h = Harness(attempts=5, stop_if=lambda: next(answers))
    fn = failing()
    with pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert len(fn.calls) == 2 and h.reasons() == [("retry", None), ("give_up", "circuit_open")]


def test_every_call_counts_towards_the_budget_so_its_share_of_retries_is_granted():
    clock = FakeClock()
    budget = LocalRetryBudget(ratio=1.0, floor_per_second=0.0, window=10, clock=clock)
    h = Harness(attempts=5, budget=budget)
    assert h.retrying.call(failing(times=1)) == 2  # its own call earns its one retry
    with pytest.raises(ConnectionError):
        h.retrying.call(failing(times=2))
    refused = {"attempt": 2, "reason": "budget", "error": "ConnectionError"}
    assert h.events[-1] == Event("retry", "budget_refused", "custom", refused)


def test_async_calls_count_towards_the_budget_and_its_refusal_stops():
    clock = FakeClock()
    budget = LocalRetryBudget(ratio=1.0, floor_per_second=0.0, window=10, clock=clock)
    h = Harness(attempts=5, budget=budget)
    assert asyncio.run(h.retrying.acall(afailing(times=1))) == 2
    with pytest.raises(ConnectionError):
        asyncio.run(h.retrying.acall(afailing(times=2)))
    assert h.reasons()[-1] == ("budget_refused", "budget")


def test_the_decorator_retries_sync_functions_too():
    h = Harness(attempts=3)
    fn = failing(times=2)
    wrapped = h.retrying(fn)
    assert wrapped() == 3 and h.sleeps == [1.0, 1.0]


class WithHeaders(ConnectionError):
    def __init__(self, headers):
        super().__init__("throttled")
        self.response = type("Response", (), {"headers": headers})()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("4", 4.0), ("0.5", 0.5), ("0", 0.0), ("-1", 0.0), ("3600", 3600.0), ("7200", 3600.0), ("1e999", 3600.0),
     ("nan", None), ("soon", None), ("", None)],
)  # fmt: skip
def test_retry_after_header_values_are_bounded_to_an_hour_or_ignored(value, seconds):
    assert retry_after(WithHeaders({"Retry-After": value})) == seconds


def test_a_retry_after_date_in_the_past_is_no_wait_and_far_ahead_is_an_hour():
    assert retry_after(WithHeaders({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    future = format_datetime(datetime(2999, 1, 1, tzinfo=UTC), usegmt=True)
    assert retry_after(WithHeaders({"Retry-After": future})) == 3600.0


def test_retry_after_of_the_error_wins_over_its_response_header():
    exc = WithHeaders({"Retry-After": "9"})
    exc.retry_after = 2
    assert retry_after(exc) == 2.0


@pytest.mark.parametrize("headers", [None, ["Retry-After"], {}])
def test_no_usable_headers_is_no_retry_after(headers):
    assert retry_after(WithHeaders(headers)) is None
    assert retry_after(ConnectionError()) is None


def test_a_retry_after_that_is_not_a_number_or_a_date_is_ignored():
    exc = ConnectionError()
    exc.retry_after = object()
    assert retry_after(exc) is None


@pytest.mark.parametrize("fields", [{"attempts": 1}, {"attempts": 100}, {"max_time": 86_400}, {"attempt_timeout": 0.001}])
def test_policies_at_their_bounds_are_accepted(fields):
    policy = RetryPolicy(**fields)
    assert all(getattr(policy, k) == v for k, v in fields.items())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attempts": 0}, "attempts must be a whole number from 1 to 100, got 0"),
        ({"attempts": 101}, "attempts must be a whole number from 1 to 100, got 101"),
        ({"attempts": True}, "attempts must be a whole number from 1 to 100, got True"),
        ({"attempts": 2.0}, "attempts must be a whole number from 1 to 100, got 2.0"),
        ({"max_time": 0}, "max_time must be a number above 0 and at most 86400, got 0"),
        ({"max_time": 86_400.5}, "max_time must be a number above 0 and at most 86400, got 86400.5"),
        ({"max_time": True}, "max_time must be a number above 0 and at most 86400, got True"),
        ({"attempt_timeout": "1"}, "attempt_timeout must be a number above 0 and at most 86400, got '1'"),
        ({"attempt_timeout": -1}, "attempt_timeout must be a number above 0 and at most 86400, got -1"),
    ],
)
def test_each_malformed_policy_field_is_refused_by_name(fields, message):
    with pytest.raises(ConfigurationError, match=f"^retry policy 'custom': {message}$"):
        RetryPolicy(**fields)


def test_a_malformed_policy_names_itself():
    with pytest.raises(ConfigurationError, match="^retry policy 'payments': attempts"):
        RetryPolicy(name="payments", attempts=0)


def test_retrying_without_an_rng_draws_from_its_own():
    assert isinstance(Retrying(RetryPolicy()).rng, random.Random)
