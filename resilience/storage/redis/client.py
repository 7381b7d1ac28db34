"""The library's one Redis client per process, built from ``RESILIENCE["REDIS"]`` with short timeouts.

Breakers, rate limits, retry budgets, stale values and the Entra provider cache all share it (one
connection pool per process); it is rebuilt when the settings change.

A cache alias reuses that django-redis cache's server address but not its timeouts or retries: the
library must give up on Redis within ``REDIS_TIMEOUT`` however patient the cache is configured to be.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings as django_settings
from django.core.cache import caches
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilience.conf import on_reload, resilience_settings
from resilience.exceptions import ConfigurationError

URL_SCHEMES = ("redis://", "rediss://", "unix://")


def connect(setting: str, timeout: float) -> redis.Redis:
    """A client for a redis:// URL or a django-redis cache alias."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 10,
        # redis-py 6+ retries connection errors itself with exponential backoff (seconds against a
        # dead server); the library does its own, bounded handling, so that layer is switched off.
        "retry": Retry(NoBackoff(), 0),
    }
    if setting.startswith(URL_SCHEMES):
        return redis.Redis.from_url(setting, **options)
    try:
        cache = caches[setting]
    except Exception as exc:
        raise ConfigurationError(f'RESILIENCE["REDIS"] names cache {setting!r}, which is not in CACHES') from exc
    factory = getattr(getattr(cache, "client", None), "connection_factory", None)
    if factory is None:
        raise ConfigurationError(f'RESILIENCE["REDIS"] names cache {setting!r}, which is not a django-redis cache')
    # The cache's connection parameters, from its connection factory: never the cache's own Redis
    # client, whose class may be ResilientClient's, which declares breakers and so needs this store.
    location = django_settings.CACHES[setting].get("LOCATION")
    first = (location.split(",") if isinstance(location, str) else list(location or [""]))[0].strip()
    template = factory.get_connection_pool(factory.make_connection_params(first))  # no connection is opened
    kwargs = {**template.connection_kwargs, **options}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=template.connection_class, **kwargs))


_shared: list[redis.Redis] = []
_lock = threading.Lock()


def shared_client() -> redis.Redis | None:
    """The process's client for ``RESILIENCE["REDIS"]``, or None when state is in-process."""
    setting = resilience_settings.REDIS
    if setting is None:
        return None
    if not _shared:
        with _lock:
            if not _shared:
                _shared.append(connect(setting, resilience_settings.REDIS_TIMEOUT))
    return _shared[0]


on_reload(_shared.clear)
