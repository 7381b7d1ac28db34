"""Fixtures for the peer-semantics tests: the in-process rate limiter on a clock the test moves, and
the limiter on the real Redis (db 15, a fresh key prefix per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings

from resilience.ratelimit.limiter import limiter
from resilience.storage.memory.ratelimit import MemoryRateLimitStore


class WallClock:
    """Seconds since the epoch that move only when told to (the in-process limiter reads ``clock()``)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def local_limits(settings: Any, wall_clock: WallClock) -> Iterator[WallClock]:
    """``REDIS = None``: throttles decide in process, on ``wall_clock``."""
    settings.RESILIENCE = {"HISTORY": False, "REDIS": None}
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {}}
    limiter().local = MemoryRateLimitStore(clock=wall_clock)
    yield wall_clock


@pytest.fixture
def shared_limits(settings: Any, key_prefix: str) -> str:
    """Throttles decide on the real Redis, on Redis's own clock."""
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {}}
    return key_prefix
