"""Chaos: a real gunicorn (4 workers) serving a small project that uses the app, under bounded load,
while what it depends on fails. Two variants, of about 25 s and 15 s:

- one Redis server: killed and restarted empty; then Postgres cut and down through the fault proxy,
  then an HTTP upstream fails. Phases steady → redis_down → redis_back → postgres → upstream → recovery.
- a Redis Cluster (3 primaries with a replica each, node timeout 1 s): the primary that serves the
  ``{rl}`` slot (every rate limit: the DRF throttles, the middleware's limit), the upstream's breaker
  and the breakers' change channel is killed, and its replica takes over. Phases steady →
  primary_down → promoted → upstream → recovery. Postgres is not faulted there: its handling does
  not depend on the Redis behind the breakers, and the first variant covers it.

Both assert: every request answered and never a 500; every write acknowledged applied exactly once
against its idempotency key, none twice; DRF throttles exact while Redis is up, failing open (as
configured) while it (or the limits' slot) has no server, and enforced again by every worker within
2 s of Redis answering again; the outage invisible to users; the upstream breaker open in every
worker within 1 s of its transition; a bounded number of server log lines per phase. The first also
checks Postgres back within one ``open_for``; the second that the limits' counts survive the
failover (the replica has them). Each prints a per-phase table and its measurements (lines starting
with ``CHAOS``), under ``pytest -q`` too; the measures and common checks are ``tests/chaos_measures.py``."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from django.db import connection

from resilience.ratelimit.keys import HASH_TAG
from resilience.storage.keys import digest

from .chaos_load import Run
from .chaos_measures import (
    LOAD_THREADS,
    PROBE_THREADS,
    WORKERS,
    admitted,
    breaker_polls,
    healthy_for,
    limits_enforced_again,
    propagation,
    recovered_after,
    report,
)
from .faults.proxy import FaultProxy
from .httpserver import LocalHTTPServer
from .live import LiveServer
from .live_writes import live_writes, proxied_database  # noqa: F401 - live_writes: a fixture

if TYPE_CHECKING:
    from .storage.redis.cluster import ClusterNodeServer, LocalRedisCluster

pytestmark = pytest.mark.django_db(transaction=True)
LIMIT, BURST_REQUESTS = 10, 30  # the "chaos" scope: 10/hour (burst 10, no refill within the run), hit 30 times
PG_OPEN_FOR = 1.5
UPSTREAM_OPEN_FOR = 3.0
DB_OPS = {"read", "write", "atomic"}


def settings_for(
    redis_url: str,
    database: dict[str, Any],
    upstream: LocalHTTPServer,
    *,
    prefix: str = "chaos",
    upstream_open_for: float = UPSTREAM_OPEN_FOR,
) -> dict:
    return {
        "ROOT_URLCONF": "tests.urls_live",
        "MIDDLEWARE": [
            "tests.worker_pid.WorkerPidMiddleware",
            "django.middleware.security.SecurityMiddleware",
            "resilience.middleware.ResilienceMiddleware",
        ],
        "DATABASES": {"default": database},
        "CHAOS_UPSTREAM": upstream.url(""),
        "RESILIENCE": {
            "HISTORY": False,
            "REDIS": redis_url,  # the test-owned redis-server or cluster: nodes killed below
            "KEY_PREFIX": prefix,
            "TRUSTED_PROXIES": ["127.0.0.1/32"],  # the client names itself in X-Forwarded-For
            "RATE_LIMITS": {"ip": "6000/min", "fail": "open"},  # the middleware's limit too (never reached)
            "ROUTES": [{"path": "*", "timeout": 3}],
            "BREAKERS": {
                "default": {"minimum_calls": 5, "failure_rate": 50, "window": 10, "open_for": PG_OPEN_FOR},
                # a worker's last 10 calls: the successes of earlier phases do not delay the trip
                f"http:{upstream.url('')}": {
                    "window_type": "count",
                    "window": 10,
                    "minimum_calls": 5,
                    "open_for": upstream_open_for,
                },
            },
        },
        "REST_FRAMEWORK": {
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
            "DEFAULT_THROTTLE_RATES": {"chaos": f"{LIMIT}/hour", "recovery": "1/hour"},
        },
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"line": {"format": "%(process)d %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
            "loggers": {
                "resilience": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},  # 500s, 4xx
            },
        },
    }


@contextmanager
def steady_under_load(settings: dict[str, Any], n: dict[str, Any]) -> Iterator[tuple[Run, ThreadPoolExecutor]]:
    """A gunicorn of ``WORKERS`` workers serving ``settings``, under load for the block, a pool for bursts
    and polls, and the first phase done: ``steady``, 2 s of load, then one client hits the DRF
    throttle 30 times (``n["steady_admitted"]``)."""
    with LiveServer(settings, workers=WORKERS) as server, ThreadPoolExecutor(PROBE_THREADS) as pool:
        run = Run(server.url, lambda: server.output().splitlines())
        run.begin("steady")
        with run.loading(LOAD_THREADS):
            time.sleep(2.0)
            n["steady_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "steady", BURST_REQUESTS))
            time.sleep(0.5)
            yield run, pool


def upstream_fails_and_heals(run: Run, pool: ThreadPoolExecutor, open_for: float, upstream: LocalHTTPServer) -> dict:
    """Phases ``upstream`` (the load's upstream calls fail, and only those run, until every worker
    says the upstream's breaker is open) and ``recovery`` (it heals): the propagation and how soon
    the calls succeed again. Ends the run."""
    run.begin("upstream")
    run.upstream_status = 503
    measures: dict[str, Any] = {"breaker": propagation(breaker_polls(run, pool, f"http:{upstream.url('')}"))}
    time.sleep(0.5)
    heal_at = run.begin("recovery")
    run.upstream_status = 200
    healthy_for(run, {"upstream"}, 1.0, timeout=open_for + 5.0)
    measures["upstream_recovery_s"] = recovered_after(run.results, {"upstream"}, heal_at)
    time.sleep(0.5)
    run.begin("")
    return measures


def assert_upstream_breaker_shared(n: dict, open_for: float, context: tuple) -> None:
    """The upstream breaker open in every worker within 1 s of its transition; closed again afterwards."""
    breaker = n["breaker"]
    assert breaker["opened"] and breaker["workers_open"] == WORKERS, context
    assert breaker["max_s"] <= 1.0 and breaker["not_open_after_s"] <= 1.0, context
    assert n["upstream_recovery_s"] <= open_for + 2.0, context


@pytest.mark.usefixtures("live_writes")
def test_chaos_under_load_redis_postgres_and_an_upstream_fail_and_recover(redis_server, capsys):
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    upstream = LocalHTTPServer()
    n: dict = {}  # the measurements, printed as JSON
    try:
        with steady_under_load(settings_for(redis_server.url, proxied_database(proxy), upstream), n) as (run, pool):
            down_at = run.begin("redis_down")
            redis_server.kill()
            time.sleep(1.0)
            n["redis_down_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "redis-down", BURST_REQUESTS))
            time.sleep(max(0.0, down_at + 4.0 - run.now()))

            back_at = run.begin("redis_back")
            redis_server.start()  # on the same port, empty (no persistence)
            n["redis_boot_s"] = round(run.now() - back_at, 3)
            n["limits_back_s"], n["limits_back"] = limits_enforced_again(run, pool, back_at)
            n["redis_back_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "redis-back", BURST_REQUESTS))
            time.sleep(1.0)

            run.begin("postgres")
            time.sleep(0.5)
            proxy.cut()  # every connection cut, mid-statement for some
            time.sleep(1.0)
            proxy.cut()
            time.sleep(1.0)
            proxy.down()  # Postgres goes away: connections cut, new ones refused
            time.sleep(2.5)
            proxy.heal()
            healed_at = run.now()
            healthy_for(run, DB_OPS, 1.0, timeout=6.0)
            n["pg_recovery_s"] = recovered_after(run.results, DB_OPS, healed_at)

            n.update(upstream_fails_and_heals(run, pool, UPSTREAM_OPEN_FOR, upstream))
    finally:
        proxy.close()
        upstream.close()

    context = report(run, n, capsys)  # and the checks every variant makes
    results = run.results
    # Limits exact while Redis is up; failing open while it is down (RATE_LIMITS["fail"] = "open").
    assert n["steady_admitted"] == LIMIT and n["redis_back_admitted"] == LIMIT, context
    assert n["redis_down_admitted"] == BURST_REQUESTS, context
    # Redis down: breakers run on local state, limits fail open; users see nothing of it.
    assert all(r.status == 200 for r in results if r.phase == "redis_down"), context
    # Rate limits enforced again by every worker within 2 s of Redis returning.
    assert n["limits_back_s"] is not None and n["limits_back_s"] <= 2.0, context
    # Postgres: the outage was seen (503s), and service came back within one open_for (+ a request in flight).
    assert Counter(r.status for r in results if r.phase == "postgres")[503] > 0, context
    assert n["pg_recovery_s"] <= PG_OPEN_FOR + 1.0, context
    assert_upstream_breaker_shared(n, UPSTREAM_OPEN_FOR, context)


# -- the Redis Cluster variant ----------------------------------------------------------------------
CLUSTER_UPSTREAM_OPEN_FOR = 1.5  # shorter than the first variant's: the recovery phase costs about this
LIMITS_SLOT_KEY = f"chaos:rl2:{HASH_TAG}:any"  # every rate-limit key carries the one hash tag: one slot


def prefix_served_by(cluster: LocalRedisCluster, node: ClusterNodeServer) -> str:
    """A ``KEY_PREFIX`` whose breakers' change channel (``<prefix>:breaker-changes``, RedisBreakerStore's)
    ``node`` serves: every worker subscribes on the node that serves the channel's slot."""
    for i in range(1000):
        if cluster.primary_of(f"chaoscl{i}:breaker-changes").port == node.port:
            return f"chaoscl{i}"
    raise AssertionError(f"no prefix lands on node {node.port}")


def upstream_served_by(cluster: LocalRedisCluster, node: ClusterNodeServer, prefix: str) -> LocalHTTPServer:
    """An upstream whose breaker's shared state lives on ``node``: the breaker's name holds the
    upstream's port, so a few servers are tried (a third of them land there)."""
    for _ in range(60):
        upstream = LocalHTTPServer()
        name = f"http:{upstream.url('')}"
        state_key = f"{prefix}:breaker:{{{digest(name, 20)}}}"  # RedisBreakerStore's key
        if cluster.primary_of(state_key).port == node.port:
            return upstream
        upstream.close()
    raise AssertionError(f"no upstream's breaker lands on node {node.port}")


def promoted(node: ClusterNodeServer, timeout: float = 15.0) -> None:
    """Wait until ``node`` (a replica) says it is a primary: the moment its slots have one again."""
    client = node.client(socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    while client.execute_command("ROLE")[0] not in (b"master", "master"):
        if time.monotonic() > deadline:
            raise AssertionError(f"replica {node.port} was not promoted within {timeout} s")
        time.sleep(0.02)


@pytest.mark.usefixtures("live_writes")
def test_chaos_on_a_redis_cluster_whose_limits_primary_is_killed_under_load(fresh_redis_cluster, capsys):
    cluster = fresh_redis_cluster
    victim = cluster.primary_of(LIMITS_SLOT_KEY)  # the DRF throttles' and the middleware's limits
    replica = cluster.replica_of(victim)
    # The breakers' change channel (every worker subscribes on the node that serves its slot) and
    # the upstream's breaker on the victim too: one kill takes out all the shared state the run uses.
    prefix = prefix_served_by(cluster, victim)
    upstream = upstream_served_by(cluster, victim, prefix)
    n: dict = {"victim": victim.port, "replica": replica.port}
    database = {**connection.settings_dict, "TEST": {}, "CONN_MAX_AGE": 60, "OPTIONS": {"connect_timeout": 2}}
    try:
        settings = settings_for(cluster.url, database, upstream, prefix=prefix, upstream_open_for=CLUSTER_UPSTREAM_OPEN_FOR)
        with steady_under_load(settings, n) as (run, pool):
            down_at = run.begin("primary_down")
            victim.kill()  # the limits' slot has no primary until its replica is promoted
            n["primary_down_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "primary-down", BURST_REQUESTS))
            n["primary_down_burst_s"] = round(run.now() - down_at, 3)
            promoted(replica)

            promoted_at = run.begin("promoted")
            n["promotion_s"] = round(promoted_at - down_at, 3)
            n["limits_back_s"], n["limits_back"] = limits_enforced_again(run, pool, promoted_at)
            n["promoted_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "promoted", BURST_REQUESTS))
            # the first burst's client: its counts were replicated before the kill
            n["steady_again_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "steady", LIMIT))

            n.update(upstream_fails_and_heals(run, pool, CLUSTER_UPSTREAM_OPEN_FOR, upstream))
    finally:
        upstream.close()

    context = report(run, n, capsys, "CHAOS cluster")  # and the checks every variant makes
    results = run.results
    # Limits exact while the cluster is whole, and across the failover: the replica had the counts.
    assert n["steady_admitted"] == LIMIT and n["promoted_admitted"] == LIMIT, context
    assert n["steady_again_admitted"] == 0, context
    # No primary for the limits' slot: they fail open (RATE_LIMITS["fail"] = "open"); breakers whose
    # node is gone run on local state; users see nothing of it.
    assert n["primary_down_admitted"] == BURST_REQUESTS and n["primary_down_burst_s"] < n["promotion_s"], context
    assert all(r.status == 200 for r in results if r.phase == "primary_down"), context
    # Rate limits enforced again by every worker within 2 s of the replica's promotion.
    assert n["limits_back_s"] is not None and n["limits_back_s"] <= 2.0, context
    # A trip after the failover (the breaker's state and its change channel on the promoted replica) reaches every worker.
    assert_upstream_breaker_shared(n, CLUSTER_UPSTREAM_OPEN_FOR, context)
