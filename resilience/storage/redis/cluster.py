"""The Redis Cluster form of ``RESILIENCE["REDIS"]``: ``redis+cluster://`` (``rediss+cluster://`` for TLS).

``redis+cluster://[user:password@]host:port[,host:port...][/0][?query]`` names one or more seed nodes
of one cluster (the client discovers the rest from ``CLUSTER SLOTS`` and keeps the slot map fresh).
The query takes redis-py's URL arguments (``ssl_ca_certs=...`` and the like), as for ``redis://``.
A cluster has database 0 only. redis-py's ``RedisCluster.from_url`` cannot tell a cluster from a
single server, hence the scheme; django-redis 7 ships no cluster client (default, herd, sentinel,
sharded), so a cache alias cannot name a cluster.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.cluster import PRIMARY, ClusterNode, RedisCluster, key_slot
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import RedisClusterException, RedisError

from resilience.exceptions import ConfigurationError
from resilience.storage.redis.urls import check_url, redacted


def seeds(setting: str) -> tuple[str, list[tuple[str, int]]]:
    """The URL of the first seed in redis-py's form (``redis://``/``rediss://``, credentials and query
    kept) and the (host, port) of every seed; ValueError when the URL is not a cluster URL."""
    scheme, _, rest = setting.partition("://")
    scheme = scheme.lower()
    if not scheme.endswith("+cluster"):
        raise ValueError("not a cluster URL")
    scheme = scheme.removesuffix("+cluster")
    rest, _, query = rest.partition("?")
    credentials, at, tail = rest.rpartition("@")
    if "," in credentials and "@" in credentials:  # u:p@h1,u2:p2@h2: user "u", password "p@h1,u2:p2"
        raise ValueError("the credentials come once, before the first node")
    hosts, _, path = tail.partition("/")
    if path not in ("", "0"):
        raise ValueError("a cluster has database 0 only")
    nodes: list[tuple[str, int]] = []
    for address in hosts.split(","):
        parsed = urlsplit(f"//{address.strip()}")
        if not parsed.hostname or parsed.port is None:  # .port raises ValueError when not a number
            raise ValueError("each node is host:port")
        nodes.append((parsed.hostname, parsed.port))
    first = f"{nodes[0][0]}:{nodes[0][1]}" if ":" not in nodes[0][0] else f"[{nodes[0][0]}]:{nodes[0][1]}"
    url = f"{scheme}://{credentials}{at}{first}/0" + (f"?{query}" if query else "")
    return url, nodes


class ClusterClient:
    """A ``RedisCluster`` made at its first use, not before: redis-py's constructor reads the slot map
    at once and raises when no node answers, and a process must start (and its stores fall back)
    while the cluster is down, as with a single server, whose client connects lazily. Until a node
    answers, every use raises the last seed's error, as one server's client would (a wrong token:
    ``AuthenticationError``; a certificate not verified: ``ConnectionError``), not redis-py's wrapper
    ``RedisClusterException``, which is no ``RedisError`` and whose type says only "no node"."""

    def __init__(self, factory: Callable[[], RedisCluster]) -> None:
        self._factory = factory
        self._cluster: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        cluster = self._cluster
        if cluster is None:
            with self._lock:
                if self._cluster is None:
                    try:
                        self._cluster = self._factory()
                    except RedisClusterException as exc:  # "cannot be connected ... : <the last seed's error>"
                        if isinstance(exc.__cause__, RedisError):  # its cause names it: AuthenticationError, TLS...
                            raise exc.__cause__ from None
                        raise
                cluster = self._cluster
        return cluster

    def get_encoder(self) -> Encoder:
        """What ``Script`` hashes its source with (RedisCluster's default), without reaching a node."""
        return Encoder("utf-8", "strict", False)

    def register_script(self, script: str) -> Script:
        client: Any = self  # it answers every command RedisCluster does
        return Script(client, script)  # no I/O: the first call reaches the cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)


class _Cluster(RedisCluster):  # type: ignore[misc]
    """redis-py's cluster client, its commands raising a Redis error where redis-py fails to follow
    an ``ASK`` to a node its slot map lacks (a primary just added and resharded onto: an
    ``AttributeError`` on ``None``), so the stores treat it as the outage it is for them."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            raise RedisClusterException(f"redis-py could not follow a redirect: {exc}") from exc


def know_node(client: Any, host: str, port: int) -> Any:
    """The cluster node at ``host:port``, added to the client's nodes when its slot map lacks it (a
    primary added to the cluster serves no slot until a reshard ends), so redirects there work."""
    node = client.get_node(host=host, port=port)
    if node is None:
        node = ClusterNode(host, port, server_type=PRIMARY)
        client.nodes_manager.create_redis_connections([node])
        node = client.nodes_manager.nodes_cache.setdefault(node.name, node)
    return node


def connect_cluster(setting: str, options: dict[str, Any]) -> ClusterClient:
    """A cluster client for a ``redis+cluster://`` URL (made at first use), with ``options`` (timeouts,
    retry) applied to every node's connections; the cluster client's own retry is ``options["retry"]`` too.
    The URL is checked now: a ``ConfigurationError`` (the password hidden) when it is malformed."""
    try:
        check_url(setting)
        url, nodes = seeds(setting)
    except ValueError:  # urllib's messages may quote parts of the URL, a password included
        raise ConfigurationError(f'RESILIENCE["REDIS"] is not a valid Redis Cluster URL: {redacted(setting)!r}') from None
    options = dict(options)
    retry = options.pop("retry", None)

    def make() -> RedisCluster:
        return _Cluster(
            url=url,
            startup_nodes=[ClusterNode(host, port) for host, port in nodes[1:]],
            retry=retry,
            require_full_coverage=False,  # a shard without a primary fails its own keys' calls, not all
            **options,
        )

    return ClusterClient(make)


def is_cluster(client: Any) -> bool:
    return isinstance(client, (RedisCluster, ClusterClient))


def slot_of(key: str) -> int:
    """``key``'s cluster slot (Redis's rule: the first ``{...}`` that is not empty decides), its hash
    tag's slot remembered: a store's keys share few tags."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return _tag_slot(key[start + 1 : end])
    return int(key_slot(key.encode()))


@functools.lru_cache(maxsize=4096)
def _tag_slot(tag: str) -> int:
    return int(key_slot(tag.encode()))


def by_node(client: Any, keys: list[str]) -> list[tuple[Any, list[int]]]:
    """Which node serves each key: ``(node client, indices into keys)`` per node, so a caller can
    read several slots of one node in one pipeline on that node's clock. A single server is one group."""
    if not is_cluster(client):
        return [(client, list(range(len(keys))))]
    groups: dict[str, tuple[Any, list[int]]] = {}
    for index, key in enumerate(keys):
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        groups.setdefault(node.name, (client.get_redis_connection(node), []))[1].append(index)
    return list(groups.values())


REFRESH_EVERY = 0.25  # seconds: at most one slot-map read per client in this window


class _Refreshes:
    """When each cluster client last read its slot map, and who is reading it now."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = -REFRESH_EVERY


_refreshes: weakref.WeakKeyDictionary[Any, _Refreshes] = weakref.WeakKeyDictionary()


def refresh_slots(client: Any) -> None:
    """After a failure on a cluster, read the slot map again (a replica may have been promoted);
    quietly, as the caller already reports the failure. Nothing to do for a single server. At most
    one read per client every ``REFRESH_EVERY`` and one at a time: while a slot has no primary,
    every request fails, and each must not send every node ``CLUSTER SLOTS`` again."""
    if not is_cluster(client):
        return
    refresh = _refreshes.get(client) or _refreshes.setdefault(client, _Refreshes())
    if time.monotonic() - refresh.last < REFRESH_EVERY or not refresh.lock.acquire(blocking=False):
        return  # read a moment ago, or being read by another thread now
    try:
        if time.monotonic() - refresh.last < REFRESH_EVERY:
            return  # another thread read it between our look and our lock
        client.nodes_manager.initialize()
    except Exception:  # noqa: BLE001 - no node answers yet: a failure after REFRESH_EVERY tries again
        pass
    finally:
        refresh.last = time.monotonic()
        refresh.lock.release()


def reset_after_fork(client: Any) -> None:
    """Drop the connections inherited from the parent process (every node's pool, on a cluster)."""
    if isinstance(client, ClusterClient):
        client = client._cluster  # not made yet: nothing inherited (and no I/O in a fork hook)
        if client is None:
            return
    if not is_cluster(client):
        client.connection_pool.reset()
        return
    for node in list(client.nodes_manager.nodes_cache.values()):
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.reset()
