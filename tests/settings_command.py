"""Test settings for ``manage.py`` run in a subprocess by the command tests: history on, one breaker.

The subprocess shares the test database when it is given its name in ``TEST_PG_NAME``, and the
test's Redis state when it is given the test's key prefix in ``TEST_KEY_PREFIX`` (without it,
breaker state lives in the process)."""

import os

from tests.settings import *  # noqa: F403

_PREFIX = os.environ.get("TEST_KEY_PREFIX")
RESILIENCE = {"REDIS": None, "HISTORY": True, "BREAKERS": {"entra": {}}}
if _PREFIX:
    RESILIENCE |= {"REDIS": TEST_REDIS_URL, "KEY_PREFIX": _PREFIX, "SYNC_INTERVAL": 0.1}  # noqa: F405
