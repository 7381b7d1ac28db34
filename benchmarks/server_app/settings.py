"""Settings of ``benchmarks/server.py``'s server, chosen by environment variables the script sets:

- ``BENCH_SERVER_CONFIG``: ``none`` (Django + DRF, Django's own Postgres backend), ``resilience``
  (``ResilienceMiddleware`` with a route deadline and an IP limit, ``IPRateThrottle`` and
  ``TenantRateThrottle`` on Redis, the ``resilience.backends.postgresql`` ENGINE with its breaker) or
  ``drf`` (DRF's ``AnonRateThrottle`` and a tenant ``SimpleRateThrottle`` on django-redis) or
  ``pings`` (``none`` plus two redis-py ``PING``s per request: ``pings.py``);
- ``BENCH_SERVER_DB`` (the database), ``BENCH_SERVER_REDIS`` (URL), ``BENCH_SERVER_PREFIX`` (Redis keys),
  ``BENCH_SERVER_RATE`` (the throttles' rates) and ``BENCH_SERVER_ROUTE_RATE`` (the route's per-client
  rate); by default, rates nothing reaches.

The view, its URL and its query are the same in all three; only what wraps them differs.
"""

from __future__ import annotations

import os
from typing import Any

CONFIG = os.environ.get("BENCH_SERVER_CONFIG", "none")
if CONFIG not in ("none", "pings", "resilience", "drf"):
    raise RuntimeError(f"BENCH_SERVER_CONFIG must be none, pings, resilience or drf, not {CONFIG!r}")
REDIS_URL = os.environ.get("BENCH_SERVER_REDIS", "redis://127.0.0.1:6379/14")
PREFIX = os.environ.get("BENCH_SERVER_PREFIX", "bench-server")
RATE = os.environ.get("BENCH_SERVER_RATE", "9999999/h")  # per client: the path is timed, not the refusal
ROUTE_RATE = os.environ.get("BENCH_SERVER_ROUTE_RATE", RATE)

DEBUG = False
SECRET_KEY = "benchmark-only-not-secret"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "benchmarks.server_app.urls"
WSGI_APPLICATION = "benchmarks.server_app.wsgi.application"
LOGGING_CONFIG = None
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_SERVER_DB", "bench_server"),
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "CONN_MAX_AGE": 60,  # persistent in every configuration: one connection per worker
    }
}
REST_FRAMEWORK: dict[str, Any] = {
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": [],
}

if CONFIG == "pings":
    BENCH_REDIS_URL = REDIS_URL
    MIDDLEWARE.insert(1, "benchmarks.server_app.pings.TwoPings")
elif CONFIG == "resilience":
    INSTALLED_APPS.append("resilience")
    MIDDLEWARE.insert(1, "resilience.middleware.ResilienceMiddleware")  # right after SecurityMiddleware (E010)
    DATABASES["default"]["ENGINE"] = "resilience.backends.postgresql"  # statements through the breaker
    REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
        "resilience.throttling.IPRateThrottle",
        "resilience.throttling.TenantRateThrottle",
    ]
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"ip": RATE, "tenant": RATE}
    RESILIENCE = {
        "REDIS": REDIS_URL,
        "KEY_PREFIX": f"{PREFIX}:res",
        "HISTORY": False,
        "TRUSTED_PROXIES": ["127.0.0.1"],  # wrk stands in for the proxy: X-Forwarded-For is the client
        "TENANT_RESOLVER": "benchmarks.drf.tenant_from_header",
        "ROUTES": [{"path": "/bench/", "timeout": 2.0, "rate": ROUTE_RATE}],  # the deadline and the per-client limit
    }
elif CONFIG == "drf":
    CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": f"{PREFIX}:drf"}}
    REST_FRAMEWORK["NUM_PROXIES"] = 1  # the client address is X-Forwarded-For's last entry, as above
    REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
        "rest_framework.throttling.AnonRateThrottle",
        "benchmarks.server_app.throttles.TenantHeaderThrottle",
    ]
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": RATE, "tenant": RATE}
