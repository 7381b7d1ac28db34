"""Test settings: real Postgres and real Redis (own database index and key prefix per test)."""

import os

from project.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "resilience.backends.postgresql",
        "NAME": os.environ.get("TEST_PG_NAME", "resilience"),
        "USER": os.environ.get("TEST_PG_USER", "postgres"),
        "HOST": os.environ.get("TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("TEST_PG_PORT", "5432"),
    }
}
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": TEST_REDIS_URL}}
RESILIENCE = {"REDIS": None, "HISTORY": False}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False}
