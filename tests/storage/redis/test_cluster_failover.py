"""Failover on a real local Redis Cluster: the primary that serves a breaker's slot and a limit's
slot is killed under load from 4 worker processes; its replica takes over (node timeout 1 s)."""

import multiprocessing
import os
import signal
import time
import uuid

import pytest

from resilience import circuit_breaker
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.gcra import Limit
from resilience.storage.keys import digest
from resilience.storage.redis.breaker import RedisBreakerStore
from resilience.storage.redis.budget import RedisRetryBudget
from resilience.storage.redis.client import connect
from resilience.storage.redis.health import REDIS_ERRORS
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.storage.redis import cluster_workers
from tests.waiting import wait_for

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 4
LOAD_SECONDS = 8.0
KILL_AFTER = 1.5


def _fail():
    raise ConnectionError("dependency down")


def name_on_node(cluster, port, key_of):
    """A breaker or budget name whose hash-tagged key (``key_of(name)``) lives on the node at ``port``."""
    for n in range(10_000):
        name = f"dep-{n}"
        if cluster.primary_of(key_of(name)).port == port:
            return name
    raise AssertionError("no name lands on that node")


def breaker_on_node(cluster, prefix, port):
    return name_on_node(cluster, port, lambda name: f"{prefix}:breaker:{{{digest(name, 20)}}}")


@pytest.mark.timeout(180)
def test_a_killed_primary_costs_no_error_and_decisions_are_shared_again_once_its_replica_answers(settings, fresh_redis_cluster):
    cluster, prefix = fresh_redis_cluster, f"fo-{uuid.uuid4().hex[:8]}"
    victim = cluster.primary_of(f"{prefix}:rl2:{{rl}}:any")  # every rate-limit key shares the {rl} slot
    name = breaker_on_node(cluster, prefix, victim.port)
    settings.RESILIENCE = {
        "REDIS": cluster.url, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 0.5, "HISTORY": False, "REDIS_TIMEOUT": 0.25,
        "BREAKERS": {name: {"minimum_calls": 3, "open_for": 60}},
    }  # fmt: skip
    breaker = circuit_breaker(name)
    breaker.call(lambda: None)
    gen_before = breaker.breaker.view().gen
    barrier, results = SPAWN.Barrier(WORKERS + 1), SPAWN.Queue()
    args = (settings.RESILIENCE, name, LOAD_SECONDS, barrier, results)
    procs = [SPAWN.Process(target=cluster_workers.under_load, args=args, daemon=True) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        barrier.wait(60)
        time.sleep(KILL_AFTER)  # the load runs against a healthy cluster first
        victim.kill()
        killed = time.time()
        cluster.wait_for_failover(f"{prefix}:rl2:{{rl}}:any", victim)  # its replica serves the slots again
        promoted = time.time()
        barrier.wait(60)  # the load is over
        while breaker.state != "open":  # 3 calls at most (minimum_calls), the first success among them
            tripped = time.time()  # the start of the call that trips it: delays below are upper bounds
            with pytest.raises(ConnectionError):
                breaker.call(_fail)
        assert breaker.state == "open"
        reports = [results.get(timeout=30) for _ in procs]
    finally:
        for p in procs:
            p.join(5)
            p.kill()
    outages = [t for r in reports for t, _ in r["outages"] if t >= killed]
    last_outage = max(outages, default=killed)
    print(
        f"\nfailover: replica promoted {promoted - killed:.2f} s after the kill; last fallback decision "
        f"{last_outage - killed:.2f} s after it; calls {sum(r['calls'] for r in reports)}, escaped "
        f"{sum(len(r['escaped']) for r in reports)}, slowest call {max(r['slowest'] for r in reports) * 1000:.0f} ms; "
        f"trip seen by the workers after {[round(r['seen_open'] - tripped, 3) for r in reports]} s"
    )
    assert all(r["escaped"] == [] for r in reports), [r["escaped"] for r in reports]  # no 500s
    assert max(r["slowest"] for r in reports) < 2.0  # no hangs: REDIS_TIMEOUT bounds each attempt
    assert last_outage < killed + LOAD_SECONDS - KILL_AFTER  # decisions went back to Redis before the load ended
    assert cluster.primary_of(f"{prefix}:rl2:{{rl}}:any").port != victim.port
    # shared again: a trip after the failover reaches every worker, in a generation above every earlier one
    assert all(r["seen_open"] is not None and r["seen_open"] - tripped < 1.0 for r in reports)
    gen_after = breaker.breaker.view().gen
    assert gen_after > gen_before and {r["gen"] for r in reports} == {gen_after}
    # and a limit on the promoted node is exact
    store = RedisRateLimitStore(connect(cluster.url, 2.0))
    limit = Limit(f"{prefix}:rl2:{{rl}}:after", 20, 3600.0, 20)
    assert [store.hit([limit]).allowed for _ in range(30)].count(True) == 20


def _answers(client, key):
    try:
        client.get(key)  # the cluster client reads the slot map again after a failed command
        return True
    except REDIS_ERRORS:
        return False


@pytest.mark.timeout(120)
def test_a_replica_promoted_without_the_last_writes_forgets_them_and_never_issues_a_generation_twice(fresh_redis_cluster):
    """The worst case, made on purpose: the replica is paused (SIGSTOP) and its link cut, so the primary's last writes
    (a trip, five rate-limit hits, five retries) never reach it; the primary is killed, the replica
    resumed and promoted. What was lost is forgotten: the breaker is closed again (it trips again if
    the dependency still fails), the limit admits the lost hits a second time, the budget grants the
    lost retries again. No generation number is issued twice: the next trip's is above the lost one."""
    cluster, prefix = fresh_redis_cluster, f"lost-{uuid.uuid4().hex[:8]}"
    limit_key = f"{prefix}:rl2:{{rl}}:client"
    victim = cluster.primary_of(limit_key)
    replica = cluster.replica_of(victim)
    name = breaker_on_node(cluster, prefix, victim.port)
    budget_name = name_on_node(cluster, victim.port, lambda n: f"{prefix}:retry-budget:{{{digest(n, 20)}}}")
    client = connect(cluster.url, 0.5)
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=0.2)
    try:
        breaker = CircuitBreaker(name, BreakerConfig(minimum_calls=1, open_for=60), store)
        limits, limit = RedisRateLimitStore(client), Limit(limit_key, 10, 3600.0, 10)
        budget = RedisRetryBudget(client, budget_name, prefix=prefix, ratio=0.0, floor_per_second=0.5, window=10)
        breaker.call(lambda: None)
        kept_gen = breaker.view().gen
        assert [limits.hit([limit]).allowed for _ in range(5)] == [True] * 5
        assert victim.client().wait(1, 5000) == 1  # all of that reached the replica
        os.kill(replica.proc.pid, signal.SIGSTOP)  # paused: it cannot reconnect ...
        try:
            victim.client().client_kill_filter(_type="replica")  # ... once its primary drops the link
            assert wait_for(lambda: victim.client().info("replication")["connected_slaves"] == 0)  # writes stay on the primary
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
            lost_gen = breaker.view().gen
            assert breaker.state == "open" and lost_gen > kept_gen
            assert [limits.hit([limit]).allowed for _ in range(6)] == [True] * 5 + [False]  # full: 10 of 10
            assert [budget.try_retry() for _ in range(6)] == [True] * 5 + [False]  # the floor: 5 in 10 s
            victim.kill()
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        cluster.wait_for_failover(limit_key, victim)
        assert wait_for(lambda: _answers(client, limit_key), timeout=10)

        assert wait_for(lambda: breaker.state == "closed", timeout=5)  # the trip is forgotten everywhere
        assert breaker.view().gen == kept_gen  # the record as the replica had it
        admitted_again = [limits.hit([limit]).allowed for _ in range(6)]
        assert admitted_again == [True] * 5 + [False]  # the 5 lost hits admitted a second time: 15 in the hour
        assert [budget.try_retry() for _ in range(6)] == [True] * 5 + [False]
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        assert breaker.state == "open" and breaker.view().gen > lost_gen  # never the lost generation again
    finally:
        store.close()
        client.close()
