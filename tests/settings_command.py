"""Test settings for ``manage.py`` run in a subprocess by the command tests: history on, one breaker.

The subprocess shares the test database when it is given its name in ``TEST_PG_NAME``."""

from tests.settings import *  # noqa: F403

RESILIENCE = {"REDIS": None, "HISTORY": True, "BREAKERS": {"entra": {}}}
