import asyncio
import random

import pytest

from resilience.core.backoff import Constant, FullJitter
from resilience.core.budget import LocalRetryBudget
from resilience.core.clock import FakeClock
from resilience.core.deadline import deadline
from resilience.core.retry import Retrying, RetryPolicy, retry_after
from resilience.exceptions import CircuitOpenError, ConfigurationError, DeadlineExceeded


class Harness:
    def __init__(self, **policy):
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.events = []
        self.retrying = Retrying(
            RetryPolicy(**{"backoff": Constant(1.0), **policy}),
            clock=self.clock,
            sleep=self.sleep,
            asleep=self.asleep,
            rng=random.Random(3),
            emit=self.events.append,
        )

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    async def asleep(self, seconds):
        self.sleep(seconds)

    def kinds(self):
        return [(e.kind, e.fields.get("reason")) for e in self.events]


def flaky(failures, exc=ConnectionError):
    state = {"calls": 0}

    def fn():
        state["calls"] += 1
        if state["calls"] <= failures:
            raise exc("transient")
        return state["calls"]

    fn.state = state
    return fn


def test_retries_transient_errors_until_success():
    h = Harness(attempts=3)
    assert h.retrying.call(flaky(2)) == 3
    assert h.sleeps == [1.0, 1.0]
    assert h.kinds() == [("retry", None), ("retry", None)]


def test_gives_up_after_the_attempts_with_the_last_error():
    h = Harness(attempts=3)
    fn = flaky(10)
    with pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert fn.state["calls"] == 3
    assert h.kinds()[-1] == ("give_up", "attempts")


def test_errors_the_policy_does_not_accept_are_raised_at_once():
    h = Harness(attempts=5)
    fn = flaky(1, exc=ValueError)
    with pytest.raises(ValueError):
        h.retrying.call(fn)
    assert fn.state["calls"] == 1 and h.events == []


@pytest.mark.parametrize("exc", [CircuitOpenError("db", 3.0), DeadlineExceeded()])
def test_open_breakers_and_passed_deadlines_are_never_retried(exc):
    h = Harness(attempts=5, retry_on=lambda e: True)
    calls = []

    def fn():
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        h.retrying.call(fn)
    assert calls == [1]


def test_never_sleeps_past_the_deadline_and_gives_up_early():
    h = Harness(attempts=10, backoff=Constant(2.0))
    fn = flaky(10)
    with deadline(3.0, clock=h.clock), pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert h.sleeps == [2.0]  # a second 2 s wait would end after the deadline
    assert h.kinds()[-1] == ("give_up", "deadline")


def test_total_time_bound():
    h = Harness(attempts=10, max_time=2.5)
    with pytest.raises(ConnectionError):
        h.retrying.call(flaky(10))
    assert h.sleeps == [1.0, 1.0] and h.kinds()[-1] == ("give_up", "max_time")


def test_retry_after_from_the_error_is_honoured():
    class Throttled(ConnectionError):
        retry_after = 7.5

    h = Harness(attempts=2)
    assert h.retrying.call(flaky(1, exc=Throttled)) == 2
    assert h.sleeps == [7.5]


def test_retry_after_header_of_an_http_error_is_read():
    class Response:
        headers = {"Retry-After": "4"}

    err = ConnectionError()
    err.response = Response()
    assert retry_after(err) == 4.0


@pytest.mark.parametrize("value", ["soon", "", "-1", "nan", "1e999", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_hostile_retry_after_values_are_bounded_or_ignored(value):
    class Response:
        headers = {"Retry-After": value}

    err = ConnectionError()
    err.response = Response()
    got = retry_after(err)
    assert got is None or 0.0 <= got <= 3600.0


def test_budget_refusal_stops_retrying_and_is_an_event():
    clock = FakeClock()
    budget = LocalRetryBudget(ratio=0.0, floor_per_second=0.1, window=10, clock=clock)
    h = Harness(attempts=5, budget=budget)
    with pytest.raises(ConnectionError):
        h.retrying.call(flaky(10))
    assert h.sleeps == [1.0]
    assert h.kinds()[-1] == ("budget_refused", "budget")


def test_stop_if_prevents_retrying_into_an_open_breaker():
    h = Harness(attempts=5, stop_if=lambda: True)
    fn = flaky(10)
    with pytest.raises(ConnectionError):
        h.retrying.call(fn)
    assert fn.state["calls"] == 1 and h.kinds() == [("give_up", "circuit_open")]


def test_async_retries_use_the_async_sleep():
    h = Harness(attempts=3)
    state = {"n": 0}

    @h.retrying
    async def fn():
        state["n"] += 1
        if state["n"] < 3:
            raise TimeoutError
        return "done"

    assert asyncio.run(fn()) == "done" and h.sleeps == [1.0, 1.0]


def test_full_jitter_is_the_default_backoff():
    assert isinstance(RetryPolicy().backoff, FullJitter)


BAD_POLICIES = [{"attempts": 0}, {"attempts": 2.5}, {"attempts": True}, {"max_time": -1}, {"attempt_timeout": "1"}]


@pytest.mark.parametrize("bad", BAD_POLICIES)
def test_malformed_policies_are_refused(bad):
    with pytest.raises(ConfigurationError, match="retry policy 'custom'"):
        RetryPolicy(**bad)
