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
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken"]  # noqa: F405 - DRF's ObtainAuthToken in the login tests
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": TEST_REDIS_URL}}
RESILIENCE = {"REDIS": None, "HISTORY": False}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False}

# django-auth-adfs reads this at import time; tests point it at their fake identity provider.
AUTH_ADFS = {
    "TENANT_ID": "11111111-2222-3333-4444-555555555555",
    "CLIENT_ID": "api-client",
    "RELYING_PARTY_ID": "api-client",
    "AUDIENCE": "api-client",
    "VERSION": "v2.0",
    "USERNAME_CLAIM": "upn",
    "CLAIM_MAPPING": {},
    "TIMEOUT": 2,
    "RETRIES": 0,
}
