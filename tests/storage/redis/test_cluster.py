"""Every Redis store on a real local Redis Cluster (3 primaries, a replica each; ``redis_cluster``)."""

import multiprocessing
import time
import uuid

import pytest
from redis.cluster import RedisCluster

from resilience import circuit_breaker
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.gcra import Limit
from resilience.exceptions import ConfigurationError
from resilience.storage.redis.breaker import RedisBreakerStore
from resilience.storage.redis.budget import RedisRetryBudget
from resilience.storage.redis.client import connect
from resilience.storage.redis.cluster import REFRESH_EVERY, refresh_slots
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from resilience.storage.redis.stale import RedisStaleStore
from tests.storage import ratelimit_workers, workers
from tests.storage.redis.cluster import CommandLog, slot
from tests.storage.redis.scenarios import assert_a_breaker_is_shared_between_two_stores
from tests.waiting import wait_for

HOUR = 3600.0


@pytest.fixture
def prefix():
    return f"ctest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(redis_cluster):
    c = connect(redis_cluster.url, 2.0)
    yield c
    c.close()


def test_a_cluster_url_gives_a_cluster_client_that_finds_every_primary(redis_cluster, client):
    assert isinstance(client.cluster, RedisCluster)  # made at first use
    assert client.ping()
    assert len(client.get_primaries()) == 3
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")


def slot_map_reads(cluster) -> int:
    """``CLUSTER SLOTS`` commands every node has run so far."""
    stats = (n.client().info("commandstats").get("cmdstat_cluster|slots", {}) for n in cluster.running())
    return sum(s.get("calls", 0) for s in stats)


def test_failures_in_a_burst_read_the_slot_map_once_not_once_each(redis_cluster, client):
    client.ping()  # the client is made (its first slot map read)
    before = slot_map_reads(redis_cluster)
    for _ in range(200):  # a slot without a primary: every request fails and asks for a refresh
        refresh_slots(client)
    assert slot_map_reads(redis_cluster) - before == 1
    time.sleep(REFRESH_EVERY)
    refresh_slots(client)  # a failure after the window reads it again: a promotion is found
    assert slot_map_reads(redis_cluster) - before == 2


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://:S3cr3t-pw@127.0.0.1/0",  # no port
        "redis+cluster://:S3cr3t-pw@127.0.0.1:70000/0",  # out of range
        "redis+cluster://:S3cr3t-pw@127.0.0.1:7000/3",  # a cluster has db 0 only
        "rediss+cluster://app:S3cr3t-pw@127.0.0.1:x/0",
    ],
)
def test_a_bad_cluster_url_is_a_configuration_error_that_hides_the_password(url):
    with pytest.raises(ConfigurationError) as err:
        connect(url, 1.0)
    assert 'RESILIENCE["REDIS"]' in str(err.value)
    assert "S3cr3t" not in str(err.value) and "***@" in str(err.value)
    assert err.value.__cause__ is None and err.value.__context__ is None or "S3cr3t" not in repr(err.value.__context__)


def test_a_process_starts_and_decides_while_no_cluster_node_answers(settings, events):
    from tests.conftest import free_port

    settings.RESILIENCE = {"REDIS": f"redis+cluster://127.0.0.1:{free_port()}/0", "HISTORY": False, "KEY_PREFIX": "nocluster"}
    breaker = circuit_breaker("nobody-home")  # builds the store: no node is asked yet
    assert breaker.call(lambda: "ok") == "ok"  # a closed breaker needs no Redis
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    from resilience.ratelimit.limiter import limiter
    from resilience.ratelimit.policies import policy

    rule = policy("client", {"rate": "2/1s", "fail": "local"}, "test")
    assert [limiter().hit([(rule, "me")], "nocluster").allowed for _ in range(3)] == [True, True, False]  # local
    assert {(e.area, e.kind) for e in events} >= {("storage", "store_unavailable"), ("ratelimit", "store_unavailable")}


def test_a_malformed_cluster_url_is_system_check_e001_naming_the_key_without_the_password(settings):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"REDIS": "rediss+cluster://app:S3cr3t-pw@node-1:6379,node-2/0"}
    errors = [m for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and errors[0].msg.startswith('RESILIENCE["REDIS"] must be redis+cluster://host:port')
    assert "S3cr3t" not in errors[0].msg and "***@node-1:6379,node-2/0" in errors[0].msg


def test_a_cluster_url_passes_the_system_checks(settings, redis_cluster):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"REDIS": redis_cluster.url, "HISTORY": False}
    assert not [m for m in run_checks() if m.id.startswith("resilience.E")]


def _exercise_every_script(client, prefix):
    """Each store's scripts, each at least once: breaker (all five operations and the names list),
    one stacked rate-limit decision and a login penalty, a retry budget, a stale value, a lock."""
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=3600)
    config = BreakerConfig(minimum_calls=1, open_for=0.05, half_open_calls=1)
    try:
        breaker = CircuitBreaker("slots", config, store)  # register: names_add, view (a fresh record)
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)  # trip
        assert wait_for(lambda: store.now() > store.view("slots").open_until + 0.01)
        breaker.call(lambda: None)  # acquire a probe, release it
        breaker.force_open()  # manual
        breaker.reset()
    finally:
        store.close()
    limits = RedisRateLimitStore(client)
    tag = "{rl}"
    limits.hit([Limit(f"{prefix}:{tag}:ip", 10, 60.0, 10), Limit(f"{prefix}:{tag}:tenant", 10, 60.0, 10)])
    limits.penalise(Limit(f"{prefix}:{tag}:login", 10, 60.0, 3), f"{prefix}:{tag}:login-failures", 60, 30.0)
    budget = RedisRetryBudget(client, "slots-budget", prefix=prefix, ratio=0.2, floor_per_second=1, window=10)
    budget.record_call()
    assert budget.try_retry() and budget.healthy
    stale = RedisStaleStore(client, prefix)
    assert stale.set("group", "key", time.time(), {"v": 1}, 60, 10) and stale.healthy
    from resilience.storage.redis.scripts import LockReleaseArgs, LockReleaseKeys, lock_release

    lock = f"{prefix}:aws:credentials:{{role}}:lock"  # as integrations.aws.shared_credentials names it
    client.set(lock, "me", px=60_000)
    assert lock_release(client)(LockReleaseKeys(lock=lock), LockReleaseArgs(owner="me", keep_ms=0, mark=b""))


def test_every_script_call_touches_one_slot_and_each_kind_of_state_its_own(redis_cluster, client, prefix):
    with CommandLog(redis_cluster) as log:
        _exercise_every_script(client, prefix)
    calls = [(port, sha, keys) for port, sha, keys in log.scripts() if keys and keys[0].startswith(prefix)]
    assert len({sha for _, sha, _ in calls}) == 11  # 5 breaker operations, names, rate limit, penalty, budget, stale, lock
    for _, sha, keys in calls:
        assert len({slot(k) for k in keys}) == 1, (sha, keys)
    slots = {
        kind: {slot(k) for _, _, keys in calls for k in keys if f":{kind}" in k}
        for kind in ("breaker:", "rl2", "retry-budget", "stale", "aws")
    }
    slots["rl2"] = {slot(k) for _, _, keys in calls for k in keys if "{rl}" in k}
    assert all(len(s) == 1 for s in slots.values()), slots  # one slot per breaker, per decision, per budget...
    print("slots per kind of state:", slots)


def test_a_rate_limit_decision_is_one_command_on_the_node_that_owns_its_slot(redis_cluster, client, prefix):
    store = RedisRateLimitStore(client)
    limits = [Limit(f"{prefix}:{{rl}}:ip", 100, 60.0, 100), Limit(f"{prefix}:{{rl}}:tenant", 100, 60.0, 100)]
    store.hit(limits)  # connections made, script loaded
    with CommandLog(redis_cluster) as log:
        for _ in range(20):
            assert store.hit(limits).allowed
    mine = [(port, words) for port, words in log.seen if any(w.startswith(prefix) for w in words)]
    assert len(mine) == 20 and {words[0].upper() for _, words in mine} == {"EVALSHA"}
    assert {port for port, _ in mine} == {redis_cluster.primary_of(limits[0].key).port}


def test_successful_calls_through_a_closed_breaker_send_nothing_to_any_node(redis_cluster, client, prefix):
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=3600)
    try:
        breaker = CircuitBreaker("hot", BreakerConfig(), store)
        breaker.call(lambda: None)
        channel = f"{prefix}:breaker-changes"  # a node counts its own subscribers only
        assert wait_for(lambda: sum(n.client().pubsub_numsub(channel)[0][1] for n in redis_cluster.nodes) == 1)
        with CommandLog(redis_cluster) as log:
            for _ in range(2000):
                breaker.call(lambda: None)
        assert not [words for _, words in log.seen if any(prefix in w for w in words)]
    finally:
        store.close()


def test_a_breaker_opened_through_one_cluster_client_rejects_in_another_within_one_second(redis_cluster, prefix):
    assert_a_breaker_is_shared_between_two_stores(lambda: connect(redis_cluster.url, 2.0), prefix)


def test_eight_processes_of_four_threads_on_the_cluster_admit_exactly_the_stacked_limits(redis_cluster, client, prefix):
    tenant = (f"{prefix}:{{rl}}:tenant", 40, HOUR, 40)
    ip_a = (f"{prefix}:{{rl}}:ip-a", 15, HOUR, 15)
    ip_b = (f"{prefix}:{{rl}}:ip-b", 15, HOUR, 15)
    assert ratelimit_workers.run_race(redis_cluster.url, [[ip_a, tenant], [ip_b, tenant]]) == 30  # 1,280 attempts in all
    last = RedisRateLimitStore(client).hit([Limit(*tenant)])
    assert last.states[0].remaining == 9  # 40 - 30 admitted - this request's own cost of 1
    assert ratelimit_workers.run_race(redis_cluster.url, [[(f"{prefix}:{{rl}}:one", 50, HOUR, 50)]]) == 50


def _config(url, prefix, **breakers):
    return {"REDIS": url, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 0.5, "HISTORY": False, "BREAKERS": breakers}


def test_four_processes_on_the_cluster_reject_within_one_second_of_another_opening_the_breaker(settings, redis_cluster, prefix):
    settings.RESILIENCE = _config(redis_cluster.url, prefix, shared={"minimum_calls": 3, "open_for": 60})
    reports = workers.rejection_delays(settings.RESILIENCE, 4)
    assert {r[0] for r in reports} == {"rejected"}
    delays = [r[2] for r in reports]
    print(f"cluster: rejection delays after open: {[round(d, 4) for d in delays]}")
    assert max(delays) < 1.0, delays


def test_sixteen_callers_in_four_processes_on_the_cluster_run_no_more_than_the_permitted_probes(settings, redis_cluster, prefix):
    settings.RESILIENCE = _config(redis_cluster.url, prefix, probed={"minimum_calls": 1, "open_for": 0.5, "half_open_calls": 3})
    counter = f"{prefix}:probes-run"
    node_url = f"redis://127.0.0.1:{redis_cluster.primary_of(counter).port}/0"  # the workers count on the counter's node
    probes_run, outcomes = workers.half_open_outcomes(settings.RESILIENCE, node_url, counter)
    assert probes_run == 3
    assert outcomes.count("probed") == 3
    assert outcomes.count("rejected:half_open") == 13


def _fail():
    raise ConnectionError("dependency down")


def test_a_retry_budget_on_the_cluster_is_shared_by_two_clients(redis_cluster, prefix):
    one, two = (
        RedisRetryBudget(connect(redis_cluster.url, 2.0), "shared", prefix=prefix, ratio=0.0, floor_per_second=0.5, window=10)
        for _ in range(2)
    )  # a floor of 5 retries in 10 s, whoever takes them
    taken = [budget.try_retry() for budget in (one, two) * 4]
    assert taken.count(True) == 5 and one.healthy and two.healthy


def test_a_stale_value_kept_through_one_cluster_client_is_read_through_another(redis_cluster, prefix):
    one, two = RedisStaleStore(connect(redis_cluster.url, 2.0), prefix), RedisStaleStore(connect(redis_cluster.url, 2.0), prefix)
    assert one.set("prices", "eur", 1000.0, {"rate": 1.1}, 60, 10)
    assert two.get("prices", "eur") == (1000.0, {"rate": 1.1})
    assert two.get("prices", "usd") is None and two.healthy


def test_alert_incidents_deduplicate_on_the_cluster_in_one_slot_per_rule_and_name(redis_cluster, client, prefix):
    from resilience.observability.alerts.incidents import RedisIncidents
    from resilience.observability.alerts.rules import Match, Rule

    rule = Rule(id="breaker-open", match=Match("breaker", "transition"), threshold=2, window=60.0)
    one, two = RedisIncidents(client, prefix), RedisIncidents(connect(redis_cluster.url, 2.0), prefix)
    now = time.time()
    assert [one.count(rule, "payments", now), two.count(rule, "payments", now)] == [1, 2]  # MULTI on one slot
    first, again = one.open(rule, "payments", "inc-1"), two.open(rule, "payments", "inc-2")
    assert first == ("opened", "inc-1") and again is None  # the second worker's notice is folded into the first
    assert two.resolve(rule, "payments") == "inc-1"


def _trip_and_decide(breaker, limits, limit, results):
    try:
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        results.put((breaker.state, limits.hit([limit]).allowed))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(repr(exc))


def test_a_forked_worker_opens_its_own_connections_to_every_node_and_shares_state(redis_cluster, prefix):
    """As under gunicorn --preload: the client was used before the fork; the child must not share
    the parent's sockets (breaker scripts, the sync thread, FastScript's stacks per node)."""
    fork = multiprocessing.get_context("fork")
    client = connect(redis_cluster.url, 2.0)
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=0.2)
    try:
        breaker = CircuitBreaker("forked", BreakerConfig(minimum_calls=1, open_for=60), store)
        limits, limit = RedisRateLimitStore(client), Limit(f"{prefix}:{{rl}}:forked", 10, 60.0, 10)
        breaker.call(lambda: None)
        assert limits.hit([limit]).allowed
        results = fork.Queue()
        child = fork.Process(target=_trip_and_decide, args=(breaker, limits, limit, results))
        child.start()
        try:
            assert results.get(timeout=30) == ("open", True)
        finally:
            child.join(10)
            child.kill()
        assert wait_for(lambda: breaker.state == "open", timeout=2)  # the child's trip, seen here
        assert limits.hit([limit]).allowed and client.ping()  # the parent's connections still work
    finally:
        store.close()
