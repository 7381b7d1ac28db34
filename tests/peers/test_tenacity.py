"""tenacity's scenarios (jd/tenacity tests/test_tenacity.py), restated for ``RetryPolicy`` and
``Retrying``. tenacity runs beside ours where it can without sleeping (its ``sleep`` is injected, and
its strategies are called with a stand-in retry state); ours runs on a fake clock and a recording sleep.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import tenacity
from django.conf import settings as django_settings

from resilience import retry
from resilience.core.backoff import Constant, DecorrelatedJitter, Exponential, FullJitter
from resilience.core.clock import FakeClock
from resilience.core.deadline import deadline
from resilience.core.retry import Retrying, RetryPolicy
from resilience.exceptions import CircuitOpenError
from resilience.storage.redis.budget import RedisRetryBudget


class Run:
    """Our retry loop on a fake clock: every sleep is recorded and moves the clock."""

    def __init__(self, **policy: Any) -> None:
        self.clock, self.sleeps, self.events = FakeClock(), [], []
        self.retrying = Retrying(
            RetryPolicy(**{"backoff": Constant(1.0), **policy}),
            clock=self.clock, sleep=self.sleep, rng=random.Random(7), emit=self.events.append,
        )  # fmt: skip

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def call(self, fn: Any) -> Any:
        return self.retrying.call(fn)


def peer(**kwargs: Any) -> tenacity.Retrying:
    return tenacity.Retrying(sleep=lambda seconds: None, **kwargs)


class Failing:
    """Fails with ``exc`` for the first ``failures`` calls, then returns the call number."""

    def __init__(self, failures: int, exc: type[BaseException] = ConnectionError) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0
        self.raised: list[BaseException] = []

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            error = self.exc(f"attempt {self.calls}")
            self.raised.append(error)
            raise error
        return self.calls


def state(attempt: int, since_start: float = 0.0, upcoming: float = 0.0) -> Any:
    """What tenacity's strategies read from a ``RetryCallState``."""
    return SimpleNamespace(attempt_number=attempt, seconds_since_start=since_start, upcoming_sleep=upcoming)


# -- stop -------------------------------------------------------------------------------------------
def test_attempts_count_the_first_call_as_stop_after_attempt_does():
    """tenacity ``stop_after_attempt(3)`` and ``attempts=3``: three calls in all, then the error."""
    ours, theirs = Failing(10), Failing(10)
    with pytest.raises(ConnectionError):
        Run(attempts=3).call(ours)
    with pytest.raises(ConnectionError):
        peer(stop=tenacity.stop_after_attempt(3), reraise=True)(theirs)
    assert ours.calls == theirs.calls == 3


def test_giving_up_raises_the_last_error_itself_never_a_wrapper():
    """tenacity without ``reraise=True`` raises ``RetryError`` holding the last attempt. Here giving up
    always raises the last attempt's own exception object, as ``reraise=True`` does."""
    fn = Failing(10)
    with pytest.raises(ConnectionError) as ours:
        Run(attempts=3).call(fn)
    assert ours.value is fn.raised[-1]
    with pytest.raises(tenacity.RetryError) as theirs:
        peer(stop=tenacity.stop_after_attempt(3))(Failing(10))
    assert isinstance(theirs.value.last_attempt.exception(), ConnectionError)


def test_max_time_stops_before_a_wait_that_would_pass_it():
    """``max_time`` is tenacity's ``stop_before_delay``: give up when the next wait would end past
    the bound (1 s waits, 2.5 s bound: three attempts, 2 s slept). tenacity's ``stop_after_delay``
    looks only at the time already spent, so it sleeps once more and makes a fourth attempt at 3 s."""
    run, fn = Run(attempts=10, max_time=2.5), Failing(10)
    with pytest.raises(ConnectionError):
        run.call(fn)
    assert (fn.calls, run.sleeps) == (3, [1.0, 1.0])
    assert [e.fields.get("reason") for e in run.events][-1] == "max_time"
    before, after = tenacity.stop_before_delay(2.5), tenacity.stop_after_delay(2.5)
    assert before(state(3, since_start=2.0, upcoming=1.0)) is True  # tenacity agrees: stop after attempt 3
    assert after(state(3, since_start=2.0)) is False and after(state(4, since_start=3.0)) is True  # attempt 4, at 3 s


def test_retries_stop_at_the_deadline_instead_of_sleeping_into_it():
    """tenacity knows no request deadline: it sleeps and tries again whatever time the caller has
    left. Here a wait that would end after the current deadline is not taken: the last error is
    raised at once (2 s waits, 3 s deadline: one wait, two attempts)."""
    run, fn = Run(attempts=10, backoff=Constant(2.0)), Failing(10)
    with deadline(3.0, clock=run.clock), pytest.raises(ConnectionError):
        run.call(fn)
    assert (fn.calls, run.sleeps, run.events[-1].fields["reason"]) == (2, [2.0], "deadline")


def test_a_shared_retry_budget_bounds_the_retries_of_every_worker_together(key_prefix):
    """tenacity retries every failing call on its own; an outage multiplies the load by the attempts.
    Here two workers sharing one budget in Redis (ratio 0, a floor of 3 retries per window) get
    three retries between them, then give up at the first failure with a ``budget_refused`` event."""
    client = redis.Redis.from_url(django_settings.TEST_REDIS_URL, socket_timeout=0.5)
    budgets = [RedisRetryBudget(client, "peers", prefix=key_prefix, ratio=0.0, floor_per_second=0.1, window=30) for _ in range(2)]
    runs = [Run(attempts=2, budget=budget) for budget in budgets]
    calls = []
    for n in range(6):
        fn = Failing(10)
        with pytest.raises(ConnectionError):
            runs[n % 2].call(fn)
        calls.append(fn.calls)
    assert calls == [2, 2, 2, 1, 1, 1]
    assert [e.kind for e in runs[1].events][-1] == "budget_refused"


def test_an_open_breaker_is_never_retried_whatever_retry_on_says():
    """tenacity retries whatever its ``retry`` accepts (everything, by default), a rejection by an
    open breaker too. ``CircuitOpenError`` and ``DeadlineExceeded`` are never retried."""

    def rejected() -> None:
        raise CircuitOpenError("payments", 30.0)

    counted = []
    with pytest.raises(CircuitOpenError):
        Run(attempts=5, retry_on=lambda exc: True).call(lambda: counted.append(1) or rejected())
    with pytest.raises(tenacity.RetryError):
        peer(stop=tenacity.stop_after_attempt(5))(lambda: counted.append(2) or rejected())
    assert counted == [1, 2, 2, 2, 2, 2]


# -- wait ---------------------------------------------------------------------------------------------
def test_exponential_backoff_is_tenacitys_wait_exponential():
    """``Exponential(base, cap)`` waits what ``wait_exponential(multiplier=base, max=cap)`` waits:
    base·2ⁿ⁻¹ after the n-th attempt, capped."""
    ours, theirs = Exponential(0.5, 8.0), tenacity.wait_exponential(multiplier=0.5, max=8.0)
    rng = random.Random(0)
    assert [ours(n, 0.0, rng) for n in range(1, 10)] == [theirs(state(n)) for n in range(1, 10)]
    assert [ours(n, 0.0, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_full_jitter_draws_from_the_range_of_wait_random_exponential():
    """The default ``FullJitter(base, cap)`` and tenacity's ``wait_random_exponential`` both draw
    uniformly from [0, min(cap, base·2ⁿ⁻¹)]; ours from an injected ``random.Random``, so a seed
    repeats a run."""
    ours, theirs = FullJitter(0.1, 5.0), tenacity.wait_random_exponential(multiplier=0.1, max=5.0)
    for n in (1, 3, 6, 9):
        ceiling = min(5.0, 0.1 * 2 ** (n - 1))
        rng = random.Random(n)
        draws = [ours(n, 0.0, rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in draws) and max(draws) > 0.9 * ceiling
        assert all(0.0 <= theirs(state(n)) <= ceiling for _ in range(500))
    assert [ours(4, 0.0, random.Random(1)) for _ in range(2)] == [ours(4, 0.0, random.Random(1))] * 2


def test_wait_strategies_compose_by_adding_as_in_tenacity():
    """tenacity ``wait_fixed(1) + wait_exponential(...)`` adds the two waits (``wait_combine``);
    ``Constant(1) + Exponential(...)`` does the same, and ``.capped(x)`` bounds the sum, which
    tenacity can only do per strategy (``max=``)."""
    ours = Constant(1.0) + Exponential(0.5, 8.0)
    theirs = tenacity.wait_fixed(1) + tenacity.wait_exponential(multiplier=0.5, max=8.0)
    rng = random.Random(0)
    assert [ours(n, 0.0, rng) for n in range(1, 8)] == [theirs(state(n)) for n in range(1, 8)]
    assert [ours.capped(3.0)(n, 0.0, rng) for n in range(1, 6)] == [1.5, 2.0, 3.0, 3.0, 3.0]
    assert sum([Constant(1.0), Constant(2.0)])(1, 0.0, rng) == 3.0  # sum() of strategies, as tenacity allows


def test_jitter_stays_random_at_the_cap():
    """tenacity's ``wait_exponential_jitter`` adds its jitter and then clips to ``max``, so once the
    exponential passes the cap every client waits exactly ``max``, in lock-step. Decorrelated
    jitter here caps its upper bound *before* drawing: capped waits stay spread out."""
    theirs = tenacity.wait_exponential_jitter(max=2.0, jitter=1.0)
    assert {theirs(state(n)) for n in range(10, 40)} == {2.0}
    rng = random.Random(5)
    strategy, previous, draws = DecorrelatedJitter(0.1, 2.0), 0.0, []
    for n in range(1, 60):
        previous = strategy(n, previous, rng)
        draws.append(previous)
    late = draws[20:]
    assert max(late) <= 2.0 and len(set(late)) == len(late)  # never pinned at the cap


def test_a_retry_after_from_the_failing_side_lengthens_the_wait():
    """tenacity's wait ignores what the server asked for (unless you write a ``wait_exception``).
    Here ``retry_after`` on the error, or its response's ``Retry-After`` header, is a minimum wait."""

    class Throttled(ConnectionError):
        retry_after = 7.5

    run = Run(attempts=2, backoff=Constant(0.1))
    assert run.call(Failing(1, Throttled)) == 2 and run.sleeps == [7.5]


# -- what is retried ----------------------------------------------------------------------------------
def test_retry_on_selects_errors_like_retry_if_exception_type():
    """``retry_if_exception_type(KeyError)`` and ``retry_on=lambda e: isinstance(e, KeyError)``
    retry a KeyError and raise anything else at the first attempt."""

    def only_key_errors(exc: BaseException) -> bool:
        return isinstance(exc, KeyError)

    theirs_retrying = peer(stop=tenacity.stop_after_attempt(3), retry=tenacity.retry_if_exception_type(KeyError), reraise=True)
    for exc, calls, answer in ((KeyError, 3, 3), (ValueError, 1, "ValueError")):
        ours, theirs = Failing(2, exc), Failing(2, exc)
        outcomes = []
        for runner, fn in ((Run(attempts=3, retry_on=only_key_errors).call, ours), (theirs_retrying, theirs)):
            try:
                outcomes.append(runner(fn))
            except ValueError:
                outcomes.append("ValueError")
        assert (ours.calls, theirs.calls, outcomes) == (calls, calls, [answer, answer])


def test_the_default_policy_retries_only_transient_errors_three_times():
    """tenacity's defaults retry any ``Exception`` forever, without waiting. ``RetryPolicy()``
    defaults to three attempts with full jitter, and only connection and timeout errors."""
    fn = Failing(5, ValueError)
    assert peer()(fn) == 6
    fn = Failing(5, ValueError)
    with pytest.raises(ValueError):
        Run(backoff=FullJitter()).call(fn)
    assert fn.calls == 1
    fn = Failing(5, TimeoutError)
    with pytest.raises(TimeoutError):
        Run(backoff=FullJitter()).call(fn)
    assert fn.calls == 3


def test_results_are_never_retried_only_errors():
    """tenacity retries on results too (``retry_if_result(lambda r: r is None)``). A policy looks
    at errors only: a result is returned at once; raise from the function to retry it."""
    results = iter([None, None, "ready"])
    assert peer(retry=tenacity.retry_if_result(lambda r: r is None))(lambda: next(results)) == "ready"
    results = iter([None, None, "ready"])
    assert Run(attempts=3, retry_on=lambda exc: True).call(lambda: next(results)) is None


def test_keyboard_interrupt_is_never_retried():
    """Both agree: ``KeyboardInterrupt`` (any ``BaseException`` that is not an ``Exception``)
    propagates at once, even with a classifier that accepts everything."""
    ours, theirs = Failing(5, KeyboardInterrupt), Failing(5, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        Run(attempts=5, retry_on=lambda exc: True).call(ours)
    with pytest.raises(KeyboardInterrupt):
        peer()(theirs)
    assert ours.calls == theirs.calls == 1


# -- hooks and statistics ---------------------------------------------------------------------------
def test_events_take_the_place_of_before_sleep_and_after_hooks():
    """tenacity calls ``after`` for each failed attempt and ``before_sleep`` before each wait. Here
    the same moments are events: one ``retry`` (attempt, delay, error) per wait, and one
    ``give_up`` (attempt, reason, error) when the last attempt fails — the event path that feeds
    the signal, the log and the metrics."""
    after, before_sleep = [], []
    with pytest.raises(tenacity.RetryError):
        peer(
            stop=tenacity.stop_after_attempt(3),
            after=lambda rs: after.append(rs.attempt_number),
            before_sleep=lambda rs: before_sleep.append(rs.attempt_number),
        )(Failing(10))
    run = Run(attempts=3)
    with pytest.raises(ConnectionError):
        run.call(Failing(10))
    assert (after, before_sleep) == ([1, 2, 3], [1, 2])
    assert [(e.kind, e.fields) for e in run.events] == [
        ("retry", {"attempt": 1, "delay": 1.0, "error": "ConnectionError"}),
        ("retry", {"attempt": 2, "delay": 1.0, "error": "ConnectionError"}),
        ("give_up", {"attempt": 3, "reason": "attempts", "error": "ConnectionError"}),
    ]


def test_retry_statistics_come_from_events_not_from_the_function(settings, events):
    """tenacity keeps ``fn.statistics`` (``attempt_number``, ``idle_for``) on the decorated function.
    A ``@retry`` function has no statistics of its own (it is called by many requests at once):
    each retry and give-up reaches ``resilience.signals.event_emitted`` and the metrics instead."""
    settings.RESILIENCE = {
        "HISTORY": False,
        "RETRY": {"peers": {"attempts": 3, "backoff": "constant", "base": 0.0, "budget": None}},
    }

    @tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)
    def theirs() -> None:
        raise ConnectionError("down")

    @retry("peers")
    def ours() -> None:
        raise ConnectionError("down")

    for fn in (theirs, ours):
        with pytest.raises(ConnectionError):
            fn()
    assert theirs.statistics["attempt_number"] == 3 and not hasattr(ours, "statistics")
    retries = [e for e in events if e.area == "retry" and e.name == "peers"]
    assert [(e.kind, e.fields["attempt"]) for e in retries] == [("retry", 1), ("retry", 2), ("give_up", 3)]
