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
from resilience.storage.redis.cluster import connect_cluster
from resilience.storage.redis.urls import check_url, is_cluster_url, is_url, redacted


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
    if is_url(setting):
        try:
            check_url(setting)
            return redis.Redis.from_url(setting, **options)
        except ValueError:  # urllib's messages quote parts of the URL: a port "S3cr3t" from a password with a "/"
            raise ConfigurationError(f'RESILIENCE["REDIS"] is not a valid Redis URL: {redacted(setting)!r}') from None
    try:
        cache = caches[setting]
    except InvalidCacheBackendError:  # not chained: Django's message quotes the setting whole
        raise ConfigurationError(not_a_cache(django_settings.CACHES)) from None
    factory = getattr(getattr(cache, "client", None), "connection_factory", None)
    if factory is None:
        raise ConfigurationError(f'RESILIENCE["REDIS"] names cache {redacted(setting)!r}, which is not a django-redis cache')
    # The cache's connection parameters, from its connection factory: never the cache's own Redis
    # client, whose class may be ResilientClient's, which declares breakers and so needs this store.
    location = django_settings.CACHES[setting].get("LOCATION")
    if cluster_location(location):
        raise ConfigurationError(cluster_cache(setting))
    first = cache_locations(setting, location)[0]
    try:
        template = factory.get_connection_pool(factory.make_connection_params(first))  # no connection is opened
    except ValueError:  # as above: the message may quote the LOCATION's password
        raise ConfigurationError(_bad_location(setting, first)) from None
    kwargs = {**template.connection_kwargs, **options}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=template.connection_class, **kwargs))


def cache_locations(alias: str, location: Any) -> list[str]:
    """The URLs of a django-redis cache's ``LOCATION`` (a string, comma-separated, or a list), each
    checked as ``RESILIENCE["REDIS"]`` is (``check_url``); ``ConfigurationError``, the password hidden,
    for the first that would give no client."""
    urls = [u.strip() for u in (location.split(",") if isinstance(location, str) else list(location or [""]))]
    for url in urls:
        try:
            check_url(url)
        except ValueError:  # not chained: urllib's messages quote parts of the URL
            raise ConfigurationError(_bad_location(alias, url)) from None
    return urls


def _bad_location(alias: str, url: str) -> str:
    return f'CACHES[{alias!r}]["LOCATION"] is not a valid Redis URL: {redacted(url)!r}'


def not_a_cache(caches: dict[str, Any]) -> str:
    """The message for a ``REDIS`` that is neither a URL nor a cache alias; the value is not shown:
    what is neither may be a password pasted in the wrong place."""
    defined = ", ".join(map(repr, caches)) or "none"
    return (
        'RESILIENCE["REDIS"] is neither a Redis URL (redis://, rediss://, unix://, redis+cluster://) '
        f"nor a cache in CACHES (defined: {defined})"
    )


def cluster_location(location: Any) -> bool:
    """A cache ``LOCATION`` that names a Redis Cluster (django-redis has no client for one)."""
    urls = [location] if isinstance(location, str) else list(location or [])
    return any(isinstance(url, str) and is_cluster_url(url.strip()) for url in urls)


def cluster_cache(alias: str) -> str:
    return (
        f'RESILIENCE["REDIS"] names cache {alias!r}, whose LOCATION is a Redis Cluster URL: django-redis has no cluster '
        'client (its clients: default, herd, sentinel, sharded); set RESILIENCE["REDIS"] to the redis+cluster:// URL itself'
    )


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
