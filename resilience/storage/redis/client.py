"""The library's one Redis client per process, built from ``RESILIENCE["REDIS"]`` with short timeouts.

Breakers, rate limits, retry budgets, stale values and the Entra provider cache all share it (one
connection pool per process); it is rebuilt when the settings change.

A cache alias reuses that django-redis cache's server address but not its timeouts or retries: the
library must give up on Redis within ``REDIS_TIMEOUT`` however patient the cache is configured to be.
Both forms carry TLS and credentials: a ``rediss://`` URL (or a cache whose ``LOCATION`` is one) makes
``SSLConnection``s with the URL's user, password and ``ssl_*`` query arguments (or the cache's
``USERNAME``, ``PASSWORD`` and ``CONNECTION_POOL_KWARGS``); ``FastScript`` copies them from the pool.
Messages show a setting only through ``redacted()``: never a password.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import redis
from django.conf import settings as django_settings
from django.core.cache import InvalidCacheBackendError, caches
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilience.conf import on_reload, resilience_settings
from resilience.exceptions import ConfigurationError
from resilience.storage.redis.cluster import CLUSTER_SCHEMES, connect_cluster, is_cluster_url

URL_SCHEMES = ("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)  # cluster: storage/redis/cluster.py


def redacted(setting: str) -> str:
    """``setting`` as a message may show it: a URL's user and password (all before its last ``@``,
    after the scheme) become ``***``, so ``rediss://app:pw@host:6380/0`` is ``rediss://***@host:6380/0``.
    Used for anything that could be a mistyped URL, cache aliases included."""
    head, at, tail = setting.rpartition("@")
    if not at:
        return setting
    scheme, sep, _ = head.partition("://")
    return f"{scheme}{sep}***@{tail}" if sep else f"***@{tail}"


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
    if is_cluster_url(setting):  # a RedisCluster (made at first use) answers the commands the stores send
        return cast(redis.Redis, connect_cluster(setting, options))
    if setting.startswith(URL_SCHEMES):
        try:
            return redis.Redis.from_url(setting, **options)
        except ValueError:  # urllib's messages quote parts of the URL: a port "S3cr3t" from a password with a "/"
            raise ConfigurationError(f'RESILIENCE["REDIS"] is not a valid Redis URL: {redacted(setting)!r}') from None
    try:
        cache = caches[setting]
    except InvalidCacheBackendError:  # not chained: Django's message quotes the setting whole
        raise ConfigurationError(f'RESILIENCE["REDIS"] names cache {redacted(setting)!r}, which is not in CACHES') from None
    factory = getattr(getattr(cache, "client", None), "connection_factory", None)
    if factory is None:
        raise ConfigurationError(f'RESILIENCE["REDIS"] names cache {redacted(setting)!r}, which is not a django-redis cache')
    # The cache's connection parameters, from its connection factory: never the cache's own Redis
    # client, whose class may be ResilientClient's, which declares breakers and so needs this store.
    location = django_settings.CACHES[setting].get("LOCATION")
    first = (location.split(",") if isinstance(location, str) else list(location or [""]))[0].strip()
    try:
        template = factory.get_connection_pool(factory.make_connection_params(first))  # no connection is opened
    except ValueError:  # as above: the message may quote the LOCATION's password
        raise ConfigurationError(f'CACHES[{setting!r}]["LOCATION"] is not a valid Redis URL: {redacted(first)!r}') from None
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
