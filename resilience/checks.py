"""System checks for misconfiguration (``resilience.E0xx`` errors, ``resilience.W0xx`` warnings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import resilience_settings
from .exceptions import ConfigurationError
from .redis_connection import URL_SCHEMES

DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    messages: list[Any] = []
    try:
        redis_setting = resilience_settings.REDIS
    except ConfigurationError as exc:
        return [Error(str(exc), hint="See the settings table in README.md.", id="resilience.E001")]
    if redis_setting is None:
        if not settings.DEBUG:
            messages.append(
                Warning(
                    'RESILIENCE["REDIS"] is not set: breaker state lives in each worker process.',
                    hint="Each worker would have its own breakers; set it to a django-redis cache alias or a redis:// URL.",
                    id="resilience.W001",
                )
            )
    elif not redis_setting.startswith(URL_SCHEMES):
        caches = getattr(settings, "CACHES", {})
        if redis_setting not in caches:
            messages.append(
                Error(
                    f'RESILIENCE["REDIS"] names cache {redis_setting!r}, which is not in CACHES.',
                    hint=f"Define CACHES[{redis_setting!r}] with the django-redis backend, or give a redis:// URL.",
                    id="resilience.E002",
                )
            )
        elif caches[redis_setting].get("BACKEND") != DJANGO_REDIS_BACKEND:
            messages.append(
                Error(
                    f'RESILIENCE["REDIS"] names cache {redis_setting!r}, whose backend is not {DJANGO_REDIS_BACKEND}.',
                    hint="Use a django-redis cache (Django's own RedisCache exposes no client to share), or a redis:// URL.",
                    id="resilience.E003",
                )
            )
    return messages
