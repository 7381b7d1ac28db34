"""``benchmarks/ratelimit.py --cluster``: the same decision on a Redis Cluster, beside one server.

Starts a throw-away local cluster (3 primaries, a replica each, on free ports: the test suite's
``tests/storage/redis/cluster.py``) unless ``--cluster-url`` names one, and prints:

1. One decision (IP + tenant, one script) on the single server and on the cluster, each relative to
   a PING on the same path: redis-py's PING to the server, and the cluster client's PING to the
   primary that serves the decision's slot. On the cluster, ``FastScript`` sends the packed EVALSHA
   to that node; beside it, the same from a plain ``redis://`` client of that node (no routing: what
   the node itself costs, a replica attached) and the cluster client's own ``evalsha`` (the fallback
   ``FastScript`` used before).
2. A breaker's closed path: commands that reached any node (``INFO stats`` on every primary)
   during 10,000 successful calls: 0 on both.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

from benchmarks import harness
from resilience.core.gcra import Limit
from resilience.storage.redis.client import connect
from resilience.storage.redis.ratelimit import RedisRateLimitStore

CALLS = 10_000  # successful calls through a closed breaker


def _decisions(store: RedisRateLimitStore, prefix: str) -> Any:
    ip = Limit(f"{prefix}:{{rl}}:ip", 1_000_000, 60.0, 1_000_000)
    tenant = Limit(f"{prefix}:{{rl}}:tenant", 1_000_000, 60.0, 1_000_000)
    return harness.loop(lambda: store.hit([ip, tenant]).allowed)


def _through_cluster_client(client: RedisCluster, prefix: str) -> Any:
    """The same script sent by the cluster client's own ``evalsha`` (redis-py's command path)."""
    source = (resources.files("resilience.storage.redis") / "lua" / "ratelimit.lua").read_text()
    sha = client.script_load(source)
    keys = [f"{prefix}:{{rl}}:ip", f"{prefix}:{{rl}}:tenant"]
    wire = Limit("ip", 1_000_000, 60.0, 1_000_000).wire
    args = [*wire, *wire]
    return harness.loop(lambda: client.evalsha(sha, 2, *keys, *args)[0] == 1)


def _commands(nodes: list[redis.Redis]) -> int:
    return sum(int(n.info("stats")["total_commands_processed"]) for n in nodes)


def closed_path_commands(url: str, nodes: list[redis.Redis], prefix: str) -> int:
    """Commands any node ran during ``CALLS`` successful calls through a closed breaker (the INFO calls
    that count them excluded)."""
    from resilience.core.breaker import CircuitBreaker
    from resilience.core.breaker_config import BreakerConfig
    from resilience.storage.redis.breaker import RedisBreakerStore

    store = RedisBreakerStore(connect(url, 2.0), prefix=prefix, sync_interval=60)
    try:
        breaker = CircuitBreaker("bench-closed", BreakerConfig(), store)
        breaker.call(lambda: None)
        _commands(nodes)  # the counting connections are open (their handshakes are not counted below)
        time.sleep(0.5)  # the sync thread's first poll and subscription are done
        before = _commands(nodes)
        for _ in range(CALLS):
            breaker.call(lambda: None)
        return _commands(nodes) - before - len(nodes)  # each node counted the first INFO
    finally:
        store.close()


def run(single_url: str, cluster_url: str | None, rounds: int, target_s: float) -> None:
    local = None
    if cluster_url is None:
        from tests.storage.redis.cluster import LocalRedisCluster

        folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        local = LocalRedisCluster(folder)
        try:
            local.start()
        except BaseException:
            local.stop()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        cluster_url = local.url
    prefix = f"bench-cluster-{uuid.uuid4().hex[:8]}"
    single = connect(single_url, 2.0)
    cluster: Any = connect(cluster_url, 2.0)
    try:
        single_store, cluster_store = RedisRateLimitStore(single), RedisRateLimitStore(cluster)
        slot_node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(f"{prefix}:{{rl}}:ip"))
        at_node, hit = (lambda: cluster.ping(target_nodes=slot_node)), _decisions
        node_store = RedisRateLimitStore(connect(f"redis://{slot_node.host}:{slot_node.port}/0", 2.0))  # no routing
        variants = [
            harness.Variant("single: PING (redis-py)", harness.loop(single.ping), True, first_batch=200),
            harness.Variant("single: decision, IP + tenant", hit(single_store, prefix), True, first_batch=200),
            harness.Variant("cluster: PING to the slot's primary", harness.loop(at_node), True, first_batch=200),
            harness.Variant("cluster: decision, FastScript on its node", hit(cluster_store, prefix), True, first_batch=200),
            harness.Variant("cluster: decision, a plain client of that node", hit(node_store, prefix), True, first_batch=200),
            harness.Variant("cluster: decision, RedisCluster.evalsha", _through_cluster_client(cluster, prefix), True, 200),
        ]  # fmt: skip
        harness.measure(variants, rounds, target_s)
        single_ping, cluster_ping = variants[0], variants[2]
        rows = []
        for v in variants:
            base = single_ping if v.name.startswith("single") else cluster_ping
            ratio = statistics.median(a / b for a, b in zip(v.samples, base.samples, strict=True))
            rows.append([v.name, f"{v.median / 1000:.1f}", f"{ratio:.2f}×"])
        print(f"## Redis Cluster beside one server ({rounds} interleaved rounds, median µs per call)\n")
        print(harness.table(["variant", "µs/call", "× PING on the same path"], rows, "lrr"))
        primaries = [n.redis_connection for n in cluster.get_primaries()]
        single_commands = closed_path_commands(single_url, [redis.Redis.from_url(single_url)], prefix + "-s")
        cluster_commands = closed_path_commands(cluster_url, primaries, prefix + "-c")
        print(f"\nA breaker's closed path, {CALLS:,} successful calls: {single_commands} command(s) reached the single")
        print(f"server, {cluster_commands} reached any cluster primary (0 round trips per call on both).")
    finally:
        harness.cleanup(single, prefix)
        if local is None:  # a throw-away cluster is stopped instead
            for node in cluster.get_primaries():
                harness.cleanup(node.redis_connection, prefix)
        cluster.close()
        single.close()
        if local is not None:
            local.stop()
            shutil.rmtree(local.folder, ignore_errors=True)
