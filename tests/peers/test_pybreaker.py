"""pybreaker's scenarios (danielfm/pybreaker tests/pybreaker_test.py), restated for this app's
breaker. pybreaker runs beside ours where the scenario needs no sleep (``reset_timeout=0`` stands for
"the timeout has elapsed"); ours runs on a fake clock, or on the real Redis where state is shared.

pybreaker counts *consecutive* failures (``fail_max``, reset by any success); this breaker opens on a
failure *rate* over a sliding window once it holds ``minimum_calls``. A count window of N calls,
``minimum_calls=N`` and ``failure_rate=100`` is exactly pybreaker's ``fail_max=N``.
"""

from __future__ import annotations

import threading
from typing import Any

import pybreaker
import pytest
import redis
from django.conf import settings as django_settings
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from resilience import CircuitOpenError, circuit_breaker
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.storage.memory.breaker import MemoryBreakerStore
from resilience.storage.redis.breaker import RedisBreakerStore
from tests.waiting import wait_for


class Down(Exception):
    """The dependency failed."""


class Declined(Exception):
    """The caller's fault (a declined card): not the dependency's."""


def make(**config: Any) -> tuple[CircuitBreaker, FakeClock, list[Any]]:
    clock, events = FakeClock(), []
    values = {"window_type": "count", "window": 3, "minimum_calls": 3, "failure_rate": 100, "open_for": 60, "half_open_calls": 1}
    breaker = CircuitBreaker(
        "dep", BreakerConfig(**{**values, **config}), MemoryBreakerStore(clock), clock=clock, emit=events.append
    )
    return breaker, clock, events


def peer(**kwargs: Any) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(**{"fail_max": 3, "reset_timeout": 60, **kwargs})


def down() -> None:
    raise Down("down")


def ok() -> str:
    return "ok"


def outcome(breaker: Any, fn: Any) -> str:
    """What the caller saw: "ok", the dependency's own error, or a breaker rejection."""
    try:
        fn_call = breaker.call(fn)
    except (CircuitOpenError, pybreaker.CircuitBreakerError):
        return "rejected"
    except Exception as exc:  # noqa: BLE001 - the caller sees the dependency's own error
        return type(exc).__name__
    return str(fn_call)


def transitions(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.fields["old_state"], e.fields["new_state"]) for e in events if e.kind == "transition"]


# -- when it opens ------------------------------------------------------------------------------------------
@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=25))
def test_a_count_window_at_100_percent_opens_where_fail_max_opens(calls):
    """pybreaker ``fail_max=3`` and a 3-call count window at 100 % open at the same call of any
    sequence of successes and failures: three failures in a row."""
    ours, theirs = make()[0], peer()
    for n, fails in enumerate(calls):
        fn = down if fails else ok
        outcome(ours, fn), outcome(theirs, fn)
        assert (ours.state == "open") == (theirs.current_state == "open"), f"diverged at call {n}"
        if ours.state == "open":
            break


def test_a_success_does_not_wipe_the_failures_the_window_holds():
    """pybreaker: a success resets ``fail_counter``, so failures that alternate with successes never
    open it. Here the window keeps every outcome: half of six calls failing is 50 %, and opens."""
    ours, theirs = make(window_type="time", window=60, minimum_calls=6, failure_rate=50)[0], peer()
    for fn in [down, ok] * 10:
        outcome(ours, fn), outcome(theirs, fn)
    assert (ours.state, theirs.current_state, theirs.fail_counter) == ("open", "closed", 0)


def test_nothing_opens_before_the_window_holds_minimum_calls():
    """pybreaker opens after ``fail_max`` failures, however few calls that is; a rate is only
    judged over ``minimum_calls``: 19 failures out of 19 calls leave the default breaker closed."""
    ours, _, _ = make(window_type="time", window=60, minimum_calls=20, failure_rate=50)
    for _ in range(19):
        assert outcome(ours, down) == "Down"
    assert ours.state == "closed"
    assert outcome(ours, down) == "Down" and ours.state == "open"


def test_the_call_that_trips_the_breaker_raises_its_own_error():
    """pybreaker (default ``throw_new_error_on_trip=True``) turns the failure that reaches
    ``fail_max`` into ``CircuitBreakerError``. Here the tripping call raises the dependency's own
    error, as pybreaker does with ``throw_new_error_on_trip=False``; the calls after it are rejected
    with ``CircuitOpenError`` without running."""
    ours, theirs, quiet = make()[0], peer(), peer(throw_new_error_on_trip=False)
    assert [outcome(ours, down) for _ in range(4)] == ["Down", "Down", "Down", "rejected"]
    assert [outcome(theirs, down) for _ in range(4)] == ["Down", "Down", "rejected", "rejected"]
    assert [outcome(quiet, down) for _ in range(4)] == ["Down", "Down", "Down", "rejected"]


def test_a_success_that_fills_the_window_can_trip_and_still_returns_its_result():
    """pybreaker only trips on a failure. A rate can cross its threshold on a success: the call that
    brings the window to ``minimum_calls`` opens the breaker even when it succeeded, and returns."""
    ours, _, _ = make(window=4, minimum_calls=4, failure_rate=75)
    assert [outcome(ours, fn) for fn in (down, down, down, ok)] == ["Down", "Down", "Down", "ok"]
    assert ours.state == "open"


def test_the_tripping_call_raises_its_own_error_with_shared_state_too(settings, key_prefix):
    """The same through ``@circuit_breaker`` with the state in Redis: the third failure raises
    ``Down`` and opens the breaker for every worker; the fourth call is rejected."""
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}
    calls = []

    @circuit_breaker("peer-trip", window_type="count", window=3, minimum_calls=3, failure_rate=100, open_for=60)
    def dependency() -> None:
        calls.append(1)
        raise Down("down")

    for _ in range(3):
        with pytest.raises(Down):
            dependency()
    with pytest.raises(CircuitOpenError) as rejected:
        dependency()
    assert len(calls) == 3 and rejected.value.name == "peer-trip" and 59 < rejected.value.retry_after <= 60


# -- open, half-open, closed ------------------------------------------------------------------------------
def test_an_open_breaker_rejects_without_calling_and_says_when_to_retry():
    """pybreaker raises ``CircuitBreakerError`` ("Timeout not elapsed yet") without calling; so does
    this breaker, with ``CircuitOpenError`` carrying the name and the seconds until the next probe."""
    ours, clock, _ = make()
    for _ in range(3):
        outcome(ours, down)
    clock.advance(15)
    called = []
    with pytest.raises(CircuitOpenError) as rejected:
        ours.call(lambda: called.append(1))
    assert called == [] and (rejected.value.name, rejected.value.retry_after, rejected.value.state) == ("dep", 45.0, "open")


def test_a_failing_probe_reopens_and_raises_its_own_error():
    """pybreaker's trial call after ``reset_timeout`` re-opens the breaker on failure and raises
    ``CircuitBreakerError`` ("Trial call failed"). Here the probe raises the dependency's error, and
    the breaker is open for another ``open_for``."""
    ours, clock, events = make()
    theirs = peer(reset_timeout=0)
    for _ in range(3):
        outcome(ours, down), outcome(theirs, down)
    clock.advance(60)
    assert (outcome(ours, down), outcome(theirs, down)) == ("Down", "rejected")
    assert ours.state == "open" and theirs.current_state == "open"
    assert events[-1].fields["open_for"] == 60
    clock.advance(59)
    assert outcome(ours, ok) == "rejected"


def test_a_successful_probe_closes_the_breaker_and_the_function_runs_once():
    """pybreaker (``success_threshold=1``): after the timeout one successful call closes it. Same
    with ``half_open_calls=1``."""
    ours, clock, _ = make()
    theirs = peer(reset_timeout=0)
    for _ in range(3):
        outcome(ours, down), outcome(theirs, down)
    clock.advance(60)
    calls = []

    def counted() -> str:
        calls.append(1)
        return "ok"

    assert (outcome(ours, counted), outcome(theirs, counted)) == ("ok", "ok")
    assert (ours.state, theirs.current_state, len(calls)) == ("closed", "closed", 2)


def test_every_probe_must_succeed_before_the_breaker_closes():
    """pybreaker's ``success_threshold=3`` closes after three successful trials, and a failure in
    between re-opens it. ``half_open_calls=3`` does the same."""
    ours, clock, _ = make(half_open_calls=3)
    theirs = peer(reset_timeout=0, success_threshold=3)
    for _ in range(3):
        outcome(ours, down), outcome(theirs, down)
    clock.advance(60)
    for _ in range(2):
        outcome(ours, ok), outcome(theirs, ok)
    assert (ours.state, theirs.current_state) == ("half_open", "half-open")
    outcome(ours, down), outcome(theirs, down)
    assert (ours.state, theirs.current_state) == ("open", "open")


def test_half_open_admits_only_its_probes_and_rejects_the_rest():
    """pybreaker holds one lock around every call, so in half-open the next caller waits for the
    trial to finish. Here callers never queue: while the one permitted probe runs, another call is
    rejected at once with ``CircuitOpenError`` (state ``half_open``)."""
    ours, clock, _ = make(half_open_calls=1)
    for _ in range(3):
        outcome(ours, down)
    clock.advance(60)
    with ours:  # the probe is in flight
        with pytest.raises(CircuitOpenError) as rejected:
            ours.call(ok)
        assert rejected.value.state == "half_open"
    assert ours.state == "closed"


def client() -> redis.Redis:
    return redis.Redis.from_url(django_settings.TEST_REDIS_URL, socket_timeout=0.5)


def test_the_single_probe_is_single_across_workers(key_prefix):
    """pybreaker's lock is per process (its Redis storage shares the state, not the trial). Here the
    half-open permits live in Redis: while one worker's probe runs, another worker is rejected."""
    config = BreakerConfig(window_type="count", window=3, minimum_calls=3, failure_rate=100, open_for=0.05, half_open_calls=1)
    one = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    two = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    try:
        a, b = CircuitBreaker("probe", config, one), CircuitBreaker("probe", config, two)
        for _ in range(3):
            outcome(a, down)
        assert wait_for(lambda: b.state == "half_open")  # open_for (50 ms) is over, as both workers see it
        in_probe, release = threading.Event(), threading.Event()

        def slow_probe() -> str:
            in_probe.set()
            release.wait(5)
            return "ok"

        worker = threading.Thread(target=a.call, args=(slow_probe,))
        worker.start()
        try:
            assert in_probe.wait(5)
            with pytest.raises(CircuitOpenError) as rejected:
                b.call(ok)
            assert rejected.value.state == "half_open"
        finally:
            release.set()
            worker.join(5)
        assert wait_for(lambda: b.state == "closed") and b.call(ok) == "ok"
    finally:
        one.close()
        two.close()


def test_reset_closes_the_breaker_and_forgets_its_failures():
    """pybreaker's ``close()``: closed, ``fail_counter`` 0. ``reset()``: closed, and the failures
    before it never count again (a fresh window: two more failures stay below minimum_calls)."""
    ours, _, _ = make()
    theirs = peer()
    for _ in range(3):
        outcome(ours, down), outcome(theirs, down)
    ours.reset()
    theirs.close()
    assert (ours.state, theirs.current_state, theirs.fail_counter) == ("closed", "closed", 0)
    outcome(ours, down), outcome(ours, down)
    assert ours.state == "closed"


def test_force_open_does_not_time_out_into_half_open():
    """pybreaker's ``open()`` is an ordinary trip: after ``reset_timeout`` the next call is a trial.
    ``force_open()`` rejects until ``reset()``, however long (no ``retry_after``: nobody knows when)."""
    theirs = peer(reset_timeout=0)
    theirs.open()
    assert outcome(theirs, ok) == "ok" and theirs.current_state == "closed"
    ours, clock, _ = make()
    ours.force_open()
    clock.advance(86_400)
    with pytest.raises(CircuitOpenError) as rejected:
        ours.call(ok)
    assert (rejected.value.state, rejected.value.retry_after) == ("forced_open", None)


# -- what counts -------------------------------------------------------------------------------------------
def test_ignored_exceptions_count_as_neither_success_nor_failure():
    """pybreaker treats an excluded exception as a *success*: it resets ``fail_counter``. Here an
    ignored exception is not counted at all: fail, declined, fail, fail is three failures in a
    row for the window (open), and one for pybreaker after the reset (closed)."""
    ours, _, _ = make(ignore=(Declined,))
    theirs = peer(exclude=[Declined])

    def declined() -> None:
        raise Declined("card declined")

    for fn in (down, declined, down, down):
        assert outcome(ours, fn) == outcome(theirs, fn)
    assert (ours.state, theirs.current_state, theirs.fail_counter) == ("open", "closed", 2)


def test_subclasses_of_an_ignored_exception_are_ignored_too():
    """pybreaker: excluding ``LookupError`` excludes ``KeyError``. Same here."""
    ours, _, _ = make(ignore=(LookupError,))
    for _ in range(5):
        with pytest.raises(KeyError):
            ours.call({}.__getitem__, "missing")
    assert ours.state == "closed" and ours.local_stats().calls == 0


def test_ignore_takes_exception_classes_not_predicates():
    """pybreaker's ``exclude`` also takes predicates (``lambda e: e.value == "good"``); ``ignore``
    takes exception classes (or dotted paths in settings) only, validated when configured."""
    from resilience.exceptions import ConfigurationError

    assert peer(exclude=[lambda exc: True]).is_system_error(Down()) is False
    with pytest.raises(ConfigurationError, match="must be a list of exception classes"):
        BreakerConfig(ignore=(lambda exc: True,))  # type: ignore[arg-type]


def test_keyboard_interrupt_is_never_a_failure():
    """pybreaker counts any ``BaseException`` (Ctrl-C, ``SystemExit``) as a failure. Here an
    interrupted or cancelled call says nothing about the dependency."""
    ours, _, _ = make(minimum_calls=1, window=1)
    theirs = peer(fail_max=1, throw_new_error_on_trip=False)

    def interrupted() -> None:
        raise KeyboardInterrupt

    for breaker in (ours, theirs):
        with pytest.raises(KeyboardInterrupt):
            breaker.call(interrupted)
    assert (ours.state, theirs.current_state) == ("closed", "open")


def test_a_generator_is_one_call_its_error_a_failure_and_its_end_a_success():
    """pybreaker inspects a generator's values: an exception raised out of it is a failure, running
    to the end is a success. Same with ``@breaker`` on a generator function (admitted at the first
    ``next()``)."""
    ours, _, _ = make(window=2, minimum_calls=2, failure_rate=50)

    @ours
    def rows(fail: bool) -> Any:
        yield 1
        if fail:
            raise Down("mid-stream")
        yield 2

    assert list(rows(False)) == [1, 2]
    assert ours.local_stats().calls == 1 and ours.local_stats().failures == 0
    with pytest.raises(Down):
        list(rows(True))
    assert ours.state == "open"
    with pytest.raises(CircuitOpenError):
        next(rows(False))


def test_a_with_block_is_one_call():
    """pybreaker's ``calling()`` context manager; here ``with breaker:``. An error escaping the block
    is a failure and still propagates."""
    ours, _, _ = make()
    for _ in range(3):
        with pytest.raises(Down), ours:
            raise Down("in the block")
    assert ours.state == "open"


# -- listeners and events --------------------------------------------------------------------------------
def test_state_changes_are_events_in_order_like_pybreakers_listener():
    """pybreaker's ``state_change(cb, old, new)``: closed->open, open->half-open, half-open->closed.
    Here each transition is one ``breaker transition`` event with the old and new state."""

    class Listener(pybreaker.CircuitBreakerListener):
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        def state_change(self, cb: Any, old: Any, new: Any) -> None:
            self.seen.append((old.name, new.name))

    listener = Listener()
    theirs = peer(reset_timeout=0, listeners=[listener])
    ours, clock, events = make()
    for _ in range(3):
        outcome(ours, down), outcome(theirs, down)
    clock.advance(60)
    outcome(ours, ok), outcome(theirs, ok)
    assert listener.seen == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    assert transitions(events) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert [e.fields["reason"] for e in events if e.kind == "transition"] == ["threshold", "open_for elapsed", "probe success"]


def test_calls_emit_no_per_call_events_only_transitions_and_rejections():
    """pybreaker's listeners hear ``before_call``, ``success`` and ``failure`` for every call. Here
    the closed-state hot path emits nothing: events are transitions and rejections only."""
    ours, _, events = make(minimum_calls=10, window=10)
    for fn in (ok, down, ok, down):
        outcome(ours, fn)
    assert events == []


def test_transitions_reach_the_django_signal_once_each_with_shared_state(settings, key_prefix, events):
    """With the state in Redis, each transition (manual ones included, with their actor) reaches
    ``event_emitted`` once, in the process that made it."""
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}
    handle = circuit_breaker("peer-events", window_type="count", window=3, minimum_calls=3, failure_rate=100)
    for _ in range(3):
        with pytest.raises(Down):
            handle.call(down)
    from resilience import breakers

    breakers.get("peer-events").reset(actor="alice")
    seen = [(e.fields["old_state"], e.fields["new_state"], e.fields.get("actor")) for e in events if e.kind == "transition"]
    assert seen == [("closed", "open", None), ("open", "closed", "alice")]
