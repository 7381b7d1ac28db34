"""``rediss+cluster://`` against the suite's own Redis Cluster over TLS with an AUTH token
(``tls_redis_cluster`` in tests/conftest.py: 6 nodes that speak only TLS, to clients, to their replicas
and on the cluster bus; no plain port at all, so any connection that is not TLS fails): rate-limit
decisions through FastScript's own TLS connections, breakers shared between clients and processes,
retry budgets and stale values; a wrong token or a missing CA leaves each store to its fail mode; and
the token shows in nothing the library says. As test_tls_auth.py and test_tls_secrets.py do for one server."""

from __future__ import annotations

import logging
import ssl
import threading
import traceback
import uuid
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection
from redis.retry import Retry

from resilience.breakers.registry import breakers
from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import policy
from resilience.storage import retry_budget, stale_store
from resilience.storage.redis.budget import RedisRetryBudget
from resilience.storage.redis.client import connect, shared_client
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from resilience.storage.redis.stale import RedisStaleStore
from tests.storage import workers
from tests.storage.redis.cluster import TlsLocalRedisCluster
from tests.storage.redis.leaks import assert_no_secret, right_or_wrong_secret, run, said
from tests.storage.redis.scenarios import (
    assert_a_breaker_is_shared_between_two_stores,
    assert_rate_limit_fail_mode,
    assert_stores_fall_back_locally,
)
from tests.storage.redis.test_tls_auth import MIDDLEWARE

WRONG = "S3cr3t-wrong-cluster-token-5a4b"
ONCE = {"socket_timeout": 1, "retry": Retry(NoBackoff(), 0)}  # redis-py's own retries take seconds to fail


@pytest.fixture
def prefix() -> str:
    return f"ctls-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def on_tls_cluster(settings: Any, tls_redis_cluster: TlsLocalRedisCluster, prefix: str) -> TlsLocalRedisCluster:
    """``RESILIENCE["REDIS"]`` is ``rediss+cluster://:<token>@127.0.0.1:p1,127.0.0.1:p2/0?ssl_ca_certs=...``."""
    settings.RESILIENCE = {
        "REDIS": tls_redis_cluster.url, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 0.5, "HISTORY": False,
        "BREAKERS": {"shared": {"minimum_calls": 3, "open_for": 60}, "payments": {"open_for": 60}},
    }  # fmt: skip
    return tls_redis_cluster


def test_the_test_cluster_speaks_only_tls_with_the_token_on_every_node_and_link(tls_redis_cluster: TlsLocalRedisCluster) -> None:
    roles = []
    for node in tls_redis_cluster.nodes:
        client = node.client(socket_timeout=1)
        assert client.config_get("port") == {"port": "0"}  # no plain listener at all
        tls = client.config_get("tls-*")
        assert tls["tls-cluster"] == tls["tls-replication"] == "yes"  # the cluster bus and replication too
        replication = client.info("replication")
        roles.append(replication["role"])
        if replication["role"] == "slave":
            assert replication["master_link_status"] == "up"  # linked over TLS, logged in with masterauth
        with pytest.raises(redis.ConnectionError):  # plain RESP on the TLS port is refused
            redis.Redis(port=node.port, password=tls_redis_cluster.token, **ONCE).ping()
        with pytest.raises(redis.AuthenticationError):  # TLS without the token is refused
            redis.Redis(port=node.port, ssl=True, ssl_ca_certs=str(tls_redis_cluster.certificates.ca), **ONCE).set("k", 1)
    assert sorted(roles) == ["master"] * 3 + ["slave"] * 3


def test_the_library_reaches_every_primary_over_verified_tls_with_the_token(on_tls_cluster: TlsLocalRedisCluster) -> None:
    client: Any = shared_client()
    assert client.ping()
    primaries = client.get_primaries()  # discovered from CLUSTER SLOTS: the seeds were two of six
    assert {n.port for n in primaries} == {
        n.port for n in on_tls_cluster.nodes if n.client().info("replication")["role"] == "master"
    }
    for node in primaries:
        pool = client.get_redis_connection(node).connection_pool
        assert issubclass(pool.connection_class, SSLConnection)
        connection = pool.get_connection()
        try:
            assert isinstance(connection._sock, ssl.SSLSocket) and connection._sock.version() in ("TLSv1.2", "TLSv1.3")
            assert connection.cert_reqs == ssl.CERT_REQUIRED and connection.check_hostname  # redis-py's defaults, kept
            assert connection.password == on_tls_cluster.token  # percent-decoded from the URL
        finally:
            pool.release(connection)


def test_a_limit_of_n_admits_exactly_n_through_fastscripts_own_tls_connections_to_the_slots_node(
    on_tls_cluster: TlsLocalRedisCluster, prefix: str, caplog: Any, events: list[Any]
) -> None:
    client = shared_client()
    assert client is not None
    store = RedisRateLimitStore(client)
    fast = store._script
    fast._through_client = _not_this_path  # redis-py's evalsha: never taken here
    try:
        limiter, rule = Limiter(store), policy("ip", {"rate": "10/min", "fail": "closed"}, "x")
        admitted: list[bool] = []

        def hammer() -> None:
            for _ in range(5):
                admitted.append(limiter.hit([(rule, "198.51.100.9")], prefix).allowed)

        with caplog.at_level(logging.DEBUG, logger="resilience"), caplog.at_level(logging.DEBUG, logger="redis"):
            threads = [threading.Thread(target=hammer) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert len(admitted) == 40 and admitted.count(True) == 10  # 8 threads; decided in Redis: "closed" would refuse all
        assert not [e for e in events if e.kind == "store_unavailable"]
        ((name, (_, idle)),) = fast._nodes.items()  # one node: the one that serves the {rl} slot
        assert name == f"127.0.0.1:{on_tls_cluster.primary_of('{rl}').port}"
        assert idle and all(isinstance(c, SSLConnection) and isinstance(c._sock, ssl.SSLSocket) for c in idle)
        assert_no_secret(said(caplog.records, events), on_tls_cluster)
    finally:
        store.close()


def _not_this_path(*args: Any) -> Any:
    raise AssertionError("FastScript fell back to redis-py's evalsha")


def test_a_breaker_tripped_through_one_tls_cluster_client_is_seen_by_another(
    tls_redis_cluster: TlsLocalRedisCluster, prefix: str
) -> None:
    assert_a_breaker_is_shared_between_two_stores(lambda: connect(tls_redis_cluster.url, 2.0), prefix)  # over TLS


def test_breaker_state_is_shared_between_processes_over_the_tls_cluster(
    on_tls_cluster: TlsLocalRedisCluster, settings: Any
) -> None:
    reports = workers.rejection_delays(settings.RESILIENCE, 2)
    assert [r[0] for r in reports] == ["rejected", "rejected"]
    delays = [r[2] for r in reports]
    print(f"TLS cluster: rejection delays after open in 2 other processes: {[round(d, 4) for d in delays]}")
    assert max(delays) < 1.0, delays


def test_a_retry_budget_and_stale_values_are_shared_over_the_tls_cluster(
    on_tls_cluster: TlsLocalRedisCluster, prefix: str
) -> None:
    other_client = connect(on_tls_cluster.url, 2.0)
    try:
        budget = retry_budget("tls-cluster", ratio=0.0, floor=0.5, window=10)  # a floor of 5 retries in 10 s, whoever takes them
        other = RedisRetryBudget(other_client, "tls-cluster", prefix=prefix, ratio=0.0, floor_per_second=0.5, window=10)
        taken = [b.try_retry() for b in (budget, other) * 4]
        assert taken.count(True) == 5 and budget.healthy and other.healthy
        stale = stale_store()
        assert stale.set("prices", "eur", 1000.0, {"rate": 1.1}, ttl=60, max_keys=10)
        assert RedisStaleStore(other_client, prefix).get("prices", "eur") == (1000.0, {"rate": 1.1})
        assert stale.get("prices", "usd") is None and stale.healthy
    finally:
        other_client.close()


# -- a wrong token, a missing CA: each fail mode, no 500, no hang, no secret in what is said --------
@pytest.fixture(params=["wrong token", "no CA"])
def unreachable(request: Any, settings: Any, tls_redis_cluster: TlsLocalRedisCluster, prefix: str) -> tuple[str, str]:
    """Settings whose cluster URL cannot log in (a wrong token) or cannot verify the nodes (no
    ``ssl_ca_certs``: the system's CAs); the URL and the error type the stores should report."""
    if request.param == "wrong token":
        url, error = tls_redis_cluster.token_url(token=WRONG), "AuthenticationError"
    else:
        url, error = tls_redis_cluster.token_url(query=""), "ConnectionError"  # certificate verify failed
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {
        "REDIS": url, "REDIS_TIMEOUT": 0.5, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 0.2, "HISTORY": False,
        "BREAKERS": {"dep": {"minimum_calls": 2, "open_for": 60}},
    }  # fmt: skip
    return url, error


@pytest.mark.parametrize(("fail", "expected"), [("open", [200] * 4), ("closed", [429] * 4), ("local", [200, 200, 429, 429])])
def test_an_unreachable_tls_cluster_applies_each_rate_limit_fail_mode_without_a_500(
    unreachable: tuple[str, str], tls_redis_cluster: TlsLocalRedisCluster, settings: Any, caplog: Any, events: list[Any],
    fail: str, expected: list[int],
) -> None:  # fmt: skip
    url, error = unreachable
    assert_rate_limit_fail_mode(settings, caplog, fail, expected)
    reported = [e.fields.get("error") for e in events if e.area == "ratelimit" and e.kind == "store_unavailable"]
    assert reported and reported[0] == error, reported  # the outage is reported, by its cause's type
    assert_no_secret(said(caplog.records, events), tls_redis_cluster, WRONG, url)


def test_an_unreachable_tls_cluster_leaves_breakers_budgets_and_stale_values_to_their_fallbacks(
    unreachable: tuple[str, str], tls_redis_cluster: TlsLocalRedisCluster, caplog: Any, events: list[Any]
) -> None:
    url, error = unreachable
    with caplog.at_level(logging.DEBUG, logger="resilience"), caplog.at_level(logging.DEBUG, logger="redis"):
        assert_stores_fall_back_locally(events)
        client: Any = shared_client()
        with pytest.raises(redis.RedisError) as caught:  # what a caller of the shared client would see
            client.ping()
    unavailable = {e.name: e.fields.get("error") for e in events if e.kind == "store_unavailable"}
    assert unavailable.get("breaker") == unavailable.get("retry_budget") == unavailable.get("stale") == error, unavailable
    assert type(caught.value).__name__ == error
    text = said(caplog.records, events) + "".join(traceback.format_exception(caught.value))
    assert_no_secret(text, tls_redis_cluster, WRONG, url)


# -- what an operator sees ---------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["right", "wrong"])
def test_manage_py_breakers_list_and_check_show_no_token(on_tls_cluster: TlsLocalRedisCluster, settings: Any, token: str) -> None:
    right_or_wrong_secret(token, settings, on_tls_cluster.token_url(token=WRONG))
    output = run("breakers", "list")
    assert "payments" in output
    if token == "right":
        assert "forced_open" in output
    output += run("check")
    assert_no_secret(output, on_tls_cluster, WRONG, on_tls_cluster.token_url(token=WRONG))


def test_the_repr_and_str_of_objects_holding_the_cluster_client_show_no_token(on_tls_cluster: TlsLocalRedisCluster) -> None:
    client: Any = shared_client()
    rate_store = RedisRateLimitStore(client)
    try:
        Limiter(rate_store).hit([(policy("ip", "5/min", "x"), "198.51.100.4")], "tls-repr")
        breaker = breakers.get_or_create("payments")
        breaker.call(lambda: None)
        fast = rate_store._script
        nodes = client.get_nodes()
        node_clients = [client.get_redis_connection(n) for n in nodes]
        fast_connections = [c for _, idle in fast._nodes.values() for c in idle]
        objects = [client, client.cluster, client.nodes_manager, breakers.store, breaker, rate_store, fast,
                   *nodes, *node_clients, *fast_connections]  # fmt: skip
        text = "\n".join(f"{obj!r}\n{obj!s}" for obj in objects)
    finally:
        rate_store.close()
    assert "SSLConnection" in text
    assert_no_secret(text, on_tls_cluster)
