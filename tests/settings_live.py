"""Settings of the gunicorn servers the tests start: the test settings plus JSON overrides.

``LIVE_OVERRIDES`` (JSON, set by ``tests.live.LiveServer``) replaces whole settings such as
``RESILIENCE``, ``REST_FRAMEWORK``, ``ROOT_URLCONF`` or ``MIDDLEWARE``; ``LIVE_DB_NAME`` points the
server at the test database pytest-django created.
"""

import json
import os

from tests.settings import *  # noqa: F403

DATABASES["default"]["NAME"] = os.environ.get("LIVE_DB_NAME", DATABASES["default"]["NAME"])  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405 - persistent connections, as production runs
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
for _name, _value in json.loads(os.environ.get("LIVE_OVERRIDES", "{}")).items():
    globals()[_name] = _value
