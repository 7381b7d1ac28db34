"""Issue 15: the features that share state through Redis, end to end on a Redis Cluster.

Their single-server tests run again here, unchanged, on the session's local cluster
(``redis_cluster``): ``TEST_REDIS_URL``, which they put in ``RESILIENCE["REDIS"]``, is the cluster's
``redis+cluster://`` URL, and ``test_redis``, their own look at the shared Redis, a cluster client.
Where no single-server test shows what a cluster needs shown (refreshers racing with locks of their
own, two workers' alert paths, breakers on every primary), a small test here does. Each then shows
where the feature's keys went, from what the primaries ran (``CommandLog``): every command on
several keys (a script's KEYS, a MULTI ... EXEC block, a DEL) had them in one slot and ran on the
primary that serves it, the keys are on the cluster, none is on the single server, and no node
refused or failed a command (``CROSSSLOT``, ``MOVED``, a script's error).

| feature | keys, after ``<prefix>:`` | run again from |
| --- | --- | --- |
| Entra ID signing keys | ``entra:v2:{<app digest>}``, ``:lock``, ``:kid-refresh`` | ``tests/integrations/entra`` |
| AWS role credentials | ``aws:credentials:{<role digest>}``, ``:lock`` | ``tests/integrations/aws/test_credentials.py`` |
| alert incidents | ``alerts:{<rule>:<name digest>}:incident``, ``:notified`` | (two dispatchers, ``test_alerts.py``'s settings) |
| a login's cool-off | ``rl2:{rl}:...`` (its script; one DEL on success) | ``tests/test_throttling.py`` |
| every breaker, scraped | ``breaker:{<name hash>}``, read on each primary | (the Prometheus scrape of ``test_prometheus.py``) |
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.storage.redis.breaker import RedisBreakerStore
from resilience.storage.redis.client import connect
from tests import settings as test_settings
from tests import test_throttling as throttling
from tests.integrations.aws import test_credentials as aws
from tests.integrations.entra import test_backend as entra_backend
from tests.integrations.entra import test_concurrency as entra_concurrency
from tests.observability import test_alerts as alerts
from tests.observability import test_prometheus as prometheus
from tests.storage.redis.cluster import CommandLog, LocalRedisCluster, slot

# The single-server tests' own fixtures, by the names their tests ask for.
entra, idp, fresh_process = entra_backend.entra, entra_backend.idp, entra_concurrency.fresh_process
base_credentials, configure, role_arn = aws.base_credentials, aws.configure, aws.role_arn
smtp, receiver = alerts.smtp, alerts.receiver
drf, cooloff = throttling.drf, throttling.cooloff

SCRIPTS = ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL", "FCALL_RO")
Command = tuple[int, str, list[str]]  # (the primary's port, the command, the keys it touched)


# -- the single-server tests' fixtures, on the cluster ---------------------------------------------
@pytest.fixture
def key_prefix() -> str:
    """A prefix of the test's own (the conftest's cleans the single server; the cluster is thrown away)."""
    return f"cfeat-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def test_redis(redis_cluster: LocalRedisCluster) -> Iterator[Any]:
    client = redis_cluster.client()
    yield client
    client.close()


@pytest.fixture(autouse=True)
def on_the_cluster(settings: Any, redis_cluster: LocalRedisCluster, key_prefix: str) -> Iterator[LocalRedisCluster]:
    settings.TEST_REDIS_URL = redis_cluster.url
    before = refusals(redis_cluster)
    yield redis_cluster
    assert refusals(redis_cluster) == before  # no CROSSSLOT, no MOVED, no script error on any node
    single = redis.Redis.from_url(test_settings.TEST_REDIS_URL)
    barrier = f"{key_prefix}:test-barrier".encode()  # a test's own, on its interpreters' TEST_REDIS_URL
    assert [k for k in single.scan_iter(f"{key_prefix}:*", count=10_000) if k != barrier] == []  # none on the single server


def refusals(cluster: LocalRedisCluster) -> dict[str, int]:
    """What the nodes refused, summed over them: error replies by kind (``CROSSSLOT``, ``MOVED``,
    ``TRYAGAIN``...) and the calls that failed or were rejected (a script's error is its command's).
    Left out: ``NOSCRIPT`` (a script's first call on a node; the client loads it and calls again) and
    ``ERR``, which also counts the ``CLIENT SETINFO`` redis-py sends on each new connection (Redis 7.0
    does not know it, nor counts it as any command's call)."""
    total: dict[str, int] = {}
    for node in cluster.running():
        client = node.client()
        errors = {kind: int(stats["count"]) for kind, stats in client.info("errorstats").items()}
        calls = client.info("commandstats").values()
        failed = sum(int(c.get("failed_calls", 0)) + int(c.get("rejected_calls", 0)) for c in calls)
        failed -= errors.get("errorstat_NOSCRIPT", 0)
        for kind, count in [*errors.items(), ("failed or rejected calls", failed)]:
            if kind not in ("errorstat_ERR", "errorstat_NOSCRIPT"):
                total[kind] = total.get(kind, 0) + count
    return total


# -- what the primaries ran ----------------------------------------------------------------------
def commands(log: CommandLog, prefix: str) -> list[Command]:
    """Each command that touched a key under ``prefix``. A script's keys are its KEYS (its ARGV may
    name a channel, never a key); a MULTI ... EXEC block is one command, ``EXEC``, with the keys of
    the commands it queued (a node logs them together, when it runs the block)."""
    found: list[Command] = []
    block: dict[int, list[str]] = {}
    for port, words in log.seen:
        name = words[0].upper() if words else ""
        if name == "MULTI":
            block[port] = []
            continue
        if name in SCRIPTS:
            keys = words[3 : 3 + int(words[2])]
        else:
            keys = [w for w in words[1:] if w.startswith(f"{prefix}:")]
        if name == "EXEC" and port in block:
            found.append((port, "EXEC", block.pop(port)))
        elif port in block:
            block[port] += keys
        elif keys:
            found.append((port, name, keys))
    return [c for c in found if c[2]]


def owner(cluster: LocalRedisCluster) -> Callable[[str], int]:
    """The port of the primary that serves a key's slot (the slot map read once)."""
    client = cluster.client()
    ports = {s: client.nodes_manager.get_node_from_slot(s).port for s in range(16384)}
    client.close()
    return lambda key: ports[slot(key)]


def in_one_slot_each(log: CommandLog, prefix: str, cluster: LocalRedisCluster) -> list[Command]:
    """``commands(log, prefix)``, once asserted: every one had its keys in one slot and ran on the
    primary that serves it."""
    found = commands(log, prefix)
    serves = owner(cluster)
    for port, name, keys in found:
        assert len({slot(k) for k in keys}) == 1, (port, name, keys)
        assert port == serves(keys[0]), (port, name, keys)
    return found


def family(found: list[Command], part: str) -> set[str]:
    return {k for _, _, keys in found for k in keys if part in k}


def scripts(found: list[Command], part: str) -> set[tuple[str, ...]]:
    """The KEYS of the script calls on keys of ``part`` (a call that met ``NOSCRIPT`` shows twice)."""
    return {tuple(keys) for _, name, keys in found if name in SCRIPTS and any(part in k for k in keys)}


# -- Entra ID: the sealed signing keys, the fetch lock, the kid-refresh claim -----------------------
@pytest.mark.django_db
def test_entra_signing_keys_shared_through_the_cluster_serve_a_new_worker_while_the_provider_is_down(
    entra: Any, idp: Any, key_prefix: str, redis_cluster: LocalRedisCluster, test_redis: Any
) -> None:
    with CommandLog(redis_cluster) as log:
        entra_backend.test_another_worker_without_a_cache_uses_the_keys_shared_through_redis(entra, idp)
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    copy, lock = entra.shared_key, entra.shared_key + ":lock"
    assert family(found, ":entra:") == {copy, lock} and slot(copy) == slot(lock)  # the copy and its fetch lock
    assert scripts(found, ":entra:") == {(lock,)}  # the owner released its lock (lock_release.lua)
    assert test_redis.exists(copy) and not test_redis.exists(lock)


@pytest.mark.django_db
def test_entra_a_rotated_key_is_one_refresh_claimed_in_the_same_slot(
    entra: Any, idp: Any, key_prefix: str, redis_cluster: LocalRedisCluster, test_redis: Any
) -> None:
    with CommandLog(redis_cluster) as log:
        entra_backend.test_a_rotated_key_is_picked_up_with_one_refresh(entra, idp)
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    claim = entra.shared_key + ":kid-refresh"
    assert family(found, ":entra:") == {entra.shared_key, entra.shared_key + ":lock", claim}
    assert slot(claim) == slot(entra.shared_key)
    assert test_redis.exists(claim)  # held for kid_refresh_interval: other workers take the shared copy meanwhile


@pytest.mark.django_db
def test_entra_two_applications_keep_their_keys_in_a_slot_each(
    entra: Any, idp: Any, key_prefix: str, test_redis: Any, monkeypatch: Any
) -> None:
    entra_backend.test_two_applications_in_one_tenant_keep_their_own_keys(entra, idp, test_redis, key_prefix, monkeypatch)
    copies = entra_backend.shared_copies(test_redis, key_prefix)  # SCAN over every primary
    assert len(copies) == 2 and len({slot(k.decode()) for k in copies}) == 2


@pytest.mark.django_db(transaction=True)  # as tests/integrations/entra/test_concurrency.py
def test_entra_a_failed_fetch_leaves_its_mark_on_the_cluster_and_the_other_workers_back_off(
    fresh_process: Any, idp: Any, key_prefix: str, redis_cluster: LocalRedisCluster, test_redis: Any
) -> None:
    with CommandLog(redis_cluster) as log:
        entra_concurrency.test_a_failed_fetch_makes_the_other_workers_back_off_too(fresh_process, idp, test_redis, key_prefix)
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    lock = entra_concurrency.lock_key(key_prefix)
    assert scripts(found, ":entra:") == {(lock,)}  # the owner turned its lock into the failed mark (lock_release.lua)


# -- AWS role credentials: the encrypted copy and the refresh lock ---------------------------------
def test_aws_credentials_the_celery_task_keeps_on_the_cluster_sign_role_session_clients(
    configure: Any, moto_url: str, role_arn: str, key_prefix: str, redis_cluster: LocalRedisCluster, test_redis: Any
) -> None:
    from resilience.conf import resilience_settings
    from resilience.integrations.aws.credentials import Refresher
    from resilience.integrations.aws.shared_session import role_session
    from resilience.tasks import refresh_aws_credentials

    configure(moto_url, role_arn)
    with CommandLog(redis_cluster) as log:
        refresh_aws_credentials.apply()  # the beat entry's task, as a Celery worker runs it
        aws.test_a_worker_uses_the_shared_copy_without_calling_sts(configure, moto_url, role_arn)  # its refresh(): fresh
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    copy = aws.copy_of(role_arn)
    assert family(found, ":aws:") == {copy.key, copy.lock_key} and slot(copy.key) == slot(copy.lock_key)
    assert scripts(found, ":aws:") == {(copy.lock_key,)}  # the refresher released its lock
    assert test_redis.pttl(copy.key) > 3_500_000 and not test_redis.exists(copy.lock_key)
    (role,) = aws.assumed(role_arn)
    web = Refresher(resilience_settings.AWS["CREDENTIALS"])  # another process: only the cluster's copy to go on
    assert web.credentials().get_frozen_credentials().access_key == role.access_key_id
    identity = role_session(region_name="eu-west-1").client("sts", endpoint_url=moto_url).get_caller_identity()
    assert identity["Arn"].startswith(f"arn:aws:sts::{aws.ACCOUNT}:assumed-role/")
    assert len(aws.assumed(role_arn)) == 1  # nobody called STS but the task


def test_aws_four_refreshers_racing_on_the_cluster_make_one_assume_role(
    configure: Any, moto_url: str, role_arn: str, key_prefix: str, redis_cluster: LocalRedisCluster
) -> None:
    """A ``Refresher`` each, as four processes have (their own locks): only the cluster's lock and
    copy keep them to one AssumeRole. Whoever comes while the lock is held is ``busy``; later, ``fresh``."""
    from resilience.conf import resilience_settings
    from resilience.integrations.aws.credentials import Refresher

    configure(moto_url, role_arn)
    processes = [Refresher(resilience_settings.AWS["CREDENTIALS"]) for _ in range(4)]
    barrier, outcomes = threading.Barrier(4), []

    def run(refresher: Refresher) -> None:
        barrier.wait()
        outcomes.append(refresher.refresh())

    with CommandLog(redis_cluster) as log:
        threads = [threading.Thread(target=run, args=(p,)) for p in processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert outcomes.count("refreshed") == 1 and set(outcomes) <= {"refreshed", "busy", "fresh"}, outcomes
    assert len(aws.assumed(role_arn)) == 1
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    lock = aws.copy_of(role_arn).lock_key
    claims = [keys for _, name, keys in found if name == "SET" and keys == [lock]]
    # SET NX PX, each on the lock's node: the winner's, the busy ones' and any after its release (those find the copy fresh)
    assert len(claims) >= 1 + outcomes.count("busy")


# -- alerts: one incident, one notice, across workers -----------------------------------------------
def refuse_cluster_transactions(monkeypatch: Any) -> None:
    """As redis-py 5.0 to 6.0 do (setup.cfg allows ``redis>=5.0``): ``RedisCluster.pipeline(transaction=True)``
    raises; redis-py 6.1 added MULTI to cluster pipelines."""
    original = RedisCluster.pipeline

    def pipeline(self: RedisCluster, transaction: Any = None, shard_hint: Any = None) -> Any:
        if transaction:
            raise RedisClusterException("transaction is deprecated in cluster mode")
        return original(self, transaction, shard_hint)

    monkeypatch.setattr(RedisCluster, "pipeline", pipeline)


@pytest.mark.parametrize("redis_py", ["6.1+", "5.0-6.0"])
def test_alerts_two_workers_on_the_cluster_send_one_notice_per_incident_and_one_resolution(
    settings: Any, smtp: Any, key_prefix: str, redis_cluster: LocalRedisCluster, test_redis: Any, monkeypatch: Any,
    redis_py: str,
) -> None:  # fmt: skip
    """Two workers' alert paths (a dispatcher and a cluster client each) get every event of a breaker
    that opens, rejects and closes: the incidents on the cluster make it one notice each. (The
    four-process version, ``test_alerts.py``, spends seconds on starting interpreters.) Before: with
    redis-py 5.0-6.0 every incident decision raised, so each worker fell back to its own and sent its own."""
    from resilience.conf import resilience_settings
    from resilience.core.event import Event
    from resilience.observability.alerts.dispatch import Dispatcher
    from resilience.observability.alerts.incidents import RedisIncidents

    if redis_py == "5.0-6.0":
        refuse_cluster_transactions(monkeypatch)
    settings.RESILIENCE = alerts.shared_settings(key_prefix, [alerts.EMAIL], alerts.OPENED_AND_CLOSED)
    workers = [
        Dispatcher(resilience_settings.ALERTS, RedisIncidents(connect(resilience_settings.REDIS, 2.0), key_prefix))
        for _ in range(2)
    ]
    happened = [
        Event("breaker", "transition", "shared", {"old_state": "closed", "new_state": "open"}),
        Event("breaker", "rejected", "shared", {"state": "open"}),
        Event("breaker", "transition", "shared", {"old_state": "half_open", "new_state": "closed"}),
    ]
    try:
        with CommandLog(redis_cluster) as log:
            for event in happened:
                for worker in workers:  # both threads race for the incident
                    worker.submit(event)
                assert all(worker.flush(10) for worker in workers)
    finally:
        for worker in workers:
            worker.stop()
    expected = ["opened: breaker_open shared", "opened: rejecting shared", "resolved: breaker_open shared"]
    assert alerts.subjects(smtp) == [f"[resilience] {s}" for s in expected]
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    blocks = [keys for _, name, keys in found if name == "EXEC"]
    assert len(blocks) == 2 * 3 and all(len(keys) >= 2 for keys in blocks)  # open x2, open x2, resolve x2: each a MULTI
    incidents = {k for keys in blocks for k in keys}
    assert {k.rsplit(":", 1)[1] for k in incidents} == {"incident", "notified"}
    assert len({slot(k) for k in incidents}) == 2  # two rules' incidents of one name: a slot each
    (still_open,) = [k for k in incidents if ":{rejecting:" in k and k.endswith(":incident")]  # no resolve rule
    assert test_redis.exists(still_open)


# -- others: a login's cool-off, every breaker read by a scrape -------------------------------------
@pytest.mark.django_db
def test_a_successful_login_clears_the_cool_off_with_one_del_in_the_rate_limit_slot(
    cooloff: Any, key_prefix: str, redis_cluster: LocalRedisCluster
) -> None:
    with CommandLog(redis_cluster) as log:
        throttling.test_a_successful_login_clears_the_pairs_cool_off(cooloff)
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    cleared = [keys for _, name, keys in found if name == "DEL"]  # one per successful login: its cool-off and count
    assert len(cleared) == 2 and all(len(keys) == 2 and all(":{rl}:" in k for k in keys) for keys in cleared)


@pytest.mark.django_db
def test_a_scrape_reads_every_breaker_from_the_primary_that_serves_it(
    settings: Any, client: Any, key_prefix: str, redis_cluster: LocalRedisCluster
) -> None:
    prometheus.configure(settings, {"allow": ["127.0.0.1/32"]}, REDIS=redis_cluster.url, KEY_PREFIX=key_prefix)
    names = [f"dependency-{i}" for i in range(8)]
    elsewhere = RedisBreakerStore(connect(redis_cluster.url, 2.0), prefix=key_prefix, sync_interval=3600)  # another process
    try:
        for name in names[::2]:
            CircuitBreaker(name, BreakerConfig(), elsewhere).force_open()
        for name in names[1::2]:
            CircuitBreaker(name, BreakerConfig(), elsewhere).call(lambda: None)
        with CommandLog(redis_cluster) as log:
            text = client.get(prometheus.URL).content.decode()
    finally:
        elsewhere.close()
    for i, name in enumerate(names):
        state = "closed" if i % 2 else "forced_open"
        assert f'resilience_breaker_state{{name="{name}",state="{state}"}} 1.0' in text
    found = in_one_slot_each(log, key_prefix, redis_cluster)
    read = {port for port, name, keys in found if name == "HMGET" and ":breaker:" in keys[0]}
    assert len(read) == 3  # the eight breakers live on every primary: each read there
