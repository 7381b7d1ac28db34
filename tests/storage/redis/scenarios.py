"""Scenarios that run alike on each Redis the suite owns (one server, a cluster, either over TLS with
credentials): the test supplies its Redis and asserts what differs (the error type it expects, where
the keys went, what must not leak)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from resilience import CircuitOpenError, circuit_breaker
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.storage import retry_budget, stale_store
from resilience.storage.redis.breaker import RedisBreakerStore
from tests.waiting import wait_for


def assert_a_breaker_is_shared_between_two_stores(client: Callable[[], Any], prefix: str) -> None:
    """Two stores, a client each (``client()``), one prefix: a breaker opened through one is open in
    the other within a second (a change notice or a poll), and a reset and a forced open cross too."""
    one = RedisBreakerStore(client(), prefix=prefix, sync_interval=0.5)
    two = RedisBreakerStore(client(), prefix=prefix, sync_interval=0.5)
    try:
        a = CircuitBreaker("pay", BreakerConfig(minimum_calls=2, open_for=30), one)
        b = CircuitBreaker("pay", BreakerConfig(minimum_calls=2, open_for=30), two)
        assert b.state == "closed"  # b holds a view of its own, which the opening must reach
        for _ in range(2):
            with pytest.raises(ZeroDivisionError):
                a.call(lambda: 1 / 0)
        opened = time.monotonic()
        assert wait_for(lambda: b.state == "open", timeout=1.0)
        assert time.monotonic() - opened < 1.0
        a.reset()
        assert wait_for(lambda: b.state == "closed", timeout=1.0)
        b.force_open()
        assert wait_for(lambda: a.state == "forced_open", timeout=1.0)
    finally:
        one.close()
        two.close()


def assert_rate_limit_fail_mode(settings: Any, caplog: Any, fail: str, expected: list[int]) -> None:
    """With Redis unreachable (its settings already in place), four requests from one address under
    ``{"ip": "2/min", "fail": fail}`` answer ``expected``, without a 500 and without a hang: a refused
    login or certificate is immediate. What the library said is left in ``caplog``."""
    settings.RESILIENCE = {**settings.RESILIENCE, "RATE_LIMITS": {"ip": "2/min", "fail": fail}}
    client = Client(REMOTE_ADDR="198.51.100.23")
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="resilience"), caplog.at_level(logging.DEBUG, logger="redis"):
        codes = [client.get("/report/").status_code for _ in range(4)]
    assert codes == expected
    assert time.monotonic() - started < 5


def assert_stores_fall_back_locally(events: list[Any]) -> None:
    """With Redis unreachable and ``"dep"`` configured with ``minimum_calls=2``: the breaker decides and
    trips on local state, the retry budget's floor answers, a stale value is accepted but not kept, all
    without a hang; and the breaker store reports the outage (in ``events``)."""
    started = time.monotonic()
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)  # the call goes through: the breaker decides on local state
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert breaker.state == "open"  # tripped locally (2 calls, 50 % failed)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    budget = retry_budget("tls-budget", ratio=0.0, floor=1.0, window=10)
    assert budget.try_retry() is True  # the local budget's floor answers
    assert not budget.healthy
    stale = stale_store()
    assert stale.set("g", "k", 1.0, {"v": 1}, ttl=60, max_keys=10) is True  # not refused: only not kept
    assert stale.get("g", "k") is None
    assert time.monotonic() - started < 5
    assert wait_for(lambda: any(e.kind == "store_unavailable" and e.name == "breaker" for e in events), timeout=3)


def _fail() -> None:
    raise ConnectionError("dependency down")
