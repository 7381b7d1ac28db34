"""The Redis store on a real server: same semantics as memory, no round trip on the hot path."""

import uuid

import pytest
import redis
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Outcome, State
from resilience.core.clock import FakeClock
from resilience.storage.memory.breaker import MemoryBreakerStore
from resilience.storage.redis.breaker import RedisBreakerStore
from tests.storage.redis.scenarios import assert_a_breaker_is_shared_between_two_stores
from tests.waiting import wait_for

OPEN_FOR = 0.12
CONFIG = BreakerConfig(open_for=OPEN_FOR, half_open_calls=2, open_for_multiplier=2, open_for_max=0.5)


def client(url=None):
    return redis.Redis.from_url(url or settings.TEST_REDIS_URL, socket_timeout=0.5)


@pytest.fixture
def store(key_prefix):
    s = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    yield s
    s.close()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire")),
        st.tuples(st.just("trip"), st.booleans()),
        st.tuples(st.just("release"), st.integers(0, 5), st.sampled_from(list(Outcome))),
        st.tuples(st.just("manual"), st.sampled_from(["reset", "force_open", "disable"])),
        st.tuples(st.just("wait")),
    ),
    max_size=14,
)


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_lua_scripts_follow_the_same_state_machine_as_memory(key_prefix, ops):
    name = f"parity-{uuid.uuid4().hex[:8]}"
    clock = FakeClock()
    memory = MemoryBreakerStore(clock)
    shared = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=30)
    permits: list[tuple[str, int, int]] = []  # (permit, memory gen, redis gen)
    memory.register(name)
    shared.register(name)
    gens = [(memory.view(name).gen, shared.view(name).gen)]
    try:
        for op in ops:
            if op[0] == "acquire":
                pid = uuid.uuid4().hex
                a, b = memory.acquire(name, CONFIG, pid, 60), shared.acquire(name, CONFIG, pid, 60)
                assert (a.allowed, a.probe) == (b.allowed, b.probe)
                if a.probe:
                    permits.append((pid, a.view.gen, b.view.gen))
            elif op[0] == "trip":
                offset = -1 if op[1] else 0
                a = memory.trip(name, CONFIG, memory.view(name).gen + offset)
                b = shared.trip(name, CONFIG, shared.view(name).gen + offset)
                assert a[0] == b[0]
            elif op[0] == "release" and permits:
                pid, gen_a, gen_b = permits.pop(op[1] % len(permits))
                assert memory.release(name, CONFIG, gen_a, pid, op[2])[0] == shared.release(name, CONFIG, gen_b, pid, op[2])[0]
            elif op[0] == "manual":
                assert memory.manual(name, op[1])[0] == shared.manual(name, op[1])[0]
            elif op[0] == "wait":
                duration = CONFIG.open_duration(max(memory.view(name).trips, 1)) + 0.02
                clock.advance(duration)
                until = shared.now() + duration  # Redis's own clock decides for the scripts: wait for it
                assert wait_for(lambda u=until: shared.now() >= u, timeout=duration + 1)
            va, vb = memory.view(name), shared.view(name)
            assert (va.state, va.trips) == (vb.state, vb.trips)
            # generations come from each store's clock: they move at the same steps, and only up
            gens.append((va.gen, vb.gen))
            (a0, b0), (a1, b1) = gens[-2], gens[-1]
            assert (a1 > a0, b1 > b0) == (a1 != a0, b1 != b0) and (a1 != a0) == (b1 != b0)
    finally:
        shared.close()


def test_successful_calls_through_a_closed_breaker_make_no_redis_round_trip(redis_server):
    shared = RedisBreakerStore(client(redis_server.url), prefix="hot", sync_interval=3600)
    breaker = CircuitBreaker("hot", BreakerConfig(), shared)
    breaker.call(lambda: None)
    probe = client(redis_server.url)
    channel = "hot:breaker-changes"
    assert wait_for(lambda: probe.pubsub_numsub(channel)[0][1] == 1)  # the sync thread subscribed ...

    def quiet() -> bool:  # ... and finished its first poll: between two INFOs, only the first INFO ran
        first = probe.info("stats")["total_commands_processed"]
        return wait_for(lambda: False, timeout=0.05) or probe.info("stats")["total_commands_processed"] - first == 1

    assert wait_for(quiet)
    before = probe.info("stats")["total_commands_processed"]
    for _ in range(2000):
        breaker.call(lambda: None)
    after = probe.info("stats")["total_commands_processed"]
    shared.close()
    assert after - before == 1  # the first INFO itself; the 2000 calls sent nothing


def test_a_breaker_opened_by_one_store_rejects_in_another_within_one_second(key_prefix):
    assert_a_breaker_is_shared_between_two_stores(client, key_prefix)


def test_every_key_the_store_writes_has_a_ttl(store, key_prefix, test_redis):
    breaker = CircuitBreaker("ttl", BreakerConfig(minimum_calls=1, open_for=0.05, half_open_calls=2), store)
    store.stats_source = lambda: {"ttl": breaker.local_stats()}
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    open_until = store.view("ttl").open_until
    assert wait_for(lambda: store.now() >= open_until)
    with breaker:  # hold a half-open permit while we scan
        store._push_stats()
        keys = list(test_redis.scan_iter(f"{key_prefix}:*"))
        assert len(keys) >= 3  # state, stats, names
        assert all(test_redis.ttl(k) > 0 for k in keys), {k: test_redis.ttl(k) for k in keys}
        state = store._keys("ttl").state
        assert [f for f in test_redis.hkeys(state) if f.startswith(b"p:")] != []  # the permit: a field of the state


@pytest.mark.parametrize("name", ["a:b:c", "*", "{tag}", "ünïcødé ☃", "x" * 200, "pay ments"])
def test_odd_breaker_names_get_their_own_hash_tagged_keys(store, key_prefix, test_redis, name):
    breaker = CircuitBreaker(name, BreakerConfig(minimum_calls=1), store)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert breaker.state == "open"
    keys = [k.decode() for k in test_redis.scan_iter(f"{key_prefix}:breaker:*")]
    assert keys and all(k.count("{") == 1 and k.count("}") == 1 for k in keys)
    assert test_redis.hget(keys[0].split("}")[0] + "}", "name").decode() == name
    assert name in store.names()


def test_shared_stats_sum_the_windows_of_every_process(key_prefix):
    one = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    two = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    two._process = "other-host:1"
    try:
        a = CircuitBreaker("stats", BreakerConfig(), one)
        b = CircuitBreaker("stats", BreakerConfig(), two)
        one.stats_source = lambda: {"stats": a.local_stats()}
        two.stats_source = lambda: {"stats": b.local_stats()}
        for _ in range(3):
            a.call(lambda: None)
        with pytest.raises(ZeroDivisionError):
            b.call(lambda: 1 / 0)
        assert wait_for(lambda: (one.shared_stats("stats") or None) and one.shared_stats("stats").calls == 4)
        snap = one.shared_stats("stats")
        assert (snap.calls, snap.failures) == (4, 1)
    finally:
        one.close()
        two.close()


def test_half_open_permits_of_a_crashed_process_expire(store):
    config = BreakerConfig(open_for=0.05, half_open_calls=1)
    store.register("crash")
    store.trip("crash", config, store.view("crash").gen)
    open_until = store.view("crash").open_until
    assert wait_for(lambda: store.now() >= open_until)
    assert store.acquire("crash", config, "dead-process", 0.1).probe
    permit_expires = store.now() + 0.1
    assert not store.acquire("crash", config, "second", 0.1).allowed
    assert wait_for(lambda: store.now() > permit_expires + 0.005)  # the crashed process's permit runs out
    assert store.acquire("crash", config, "third", 0.1).probe
    assert store.view("crash").state is State.HALF_OPEN


def test_a_refused_probe_waits_for_the_earliest_permit_and_a_transition_drops_every_permit(store, test_redis):
    """The permits are fields of the breaker's one key (``p:<permit id>``: its expiry)."""
    config = BreakerConfig(open_for=0.05, half_open_calls=2)
    store.register("probes")
    store.trip("probes", config, store.view("probes").gen)
    open_until = store.view("probes").open_until
    assert wait_for(lambda: store.now() >= open_until)
    long, short = store.acquire("probes", config, "long", 30), store.acquire("probes", config, "short", 10)
    assert long.probe and short.probe
    refused = store.acquire("probes", config, "third", 30)
    assert not refused.allowed and 9 < refused.retry_after <= 10  # the earliest of the live permits

    def permits() -> list[bytes]:
        return sorted(f for f in test_redis.hkeys(store._keys("probes").state) if f.startswith(b"p:"))

    assert permits() == [b"p:long", b"p:short"]
    assert store.release("probes", config, short.view.gen, "short", Outcome.FAILURE)[0] is State.HALF_OPEN
    assert permits() == []  # the half-open period ended: the other permit went with it
    assert store.release("probes", config, long.view.gen, "long", Outcome.SUCCESS)[0] is None  # no longer held


def test_the_shared_list_of_breaker_names_is_bounded(shared_breakers, test_redis, key_prefix, monkeypatch):
    """Names can come from client input (hosts): past the bound a breaker still works, unlisted elsewhere."""
    from resilience.storage.redis import breaker as redis_store

    monkeypatch.setattr(redis_store, "MAX_SHARED_NAMES", 5)
    for n in range(12):
        shared_breakers.get_or_create(f"host-{n}").call(lambda: None)
    assert test_redis.scard(f"{key_prefix}:breakers") == 5
    assert test_redis.ttl(f"{key_prefix}:breakers") > 0
    assert shared_breakers.get("host-11").state == "closed"  # past the bound: still a working breaker


def test_view_is_the_stores_method_reading_the_local_copy(store):
    assert "view" not in vars(store)  # no instance attribute shadows the method
    store.register("viewed")
    store.manual("viewed", "force_open")
    assert store.view("viewed").state.value == "forced_open"


def test_a_breaker_reads_the_local_copy_directly_and_sees_a_forced_open_from_another_store(store, key_prefix):
    breaker = CircuitBreaker("read-direct", CONFIG, store)
    assert store.view_reader() == store._local.view  # the closed path's read: one frame, not two
    other = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=0.1)
    try:
        other.register("read-direct")
        other.manual("read-direct", "force_open")
        wait_for(lambda: breaker.state == "forced_open")
    finally:
        other.close()


def test_a_store_subclass_that_overrides_view_is_what_its_breakers_read(key_prefix):
    class Audited(RedisBreakerStore):
        reads = 0

        def view(self, name):
            Audited.reads += 1
            return super().view(name)

    audited = Audited(client(), prefix=key_prefix, sync_interval=0.1)
    try:
        breaker = CircuitBreaker("audited", CONFIG, audited)
        before = Audited.reads
        assert breaker.call(lambda: 7) == 7
        assert Audited.reads - before == 2  # admission and the count: both through the override
    finally:
        audited.close()


def test_a_poll_answered_after_a_trip_does_not_put_the_old_generation_back(store):
    """The sync thread's read was sent before this process's trip and answered after it: the local
    copy keeps the trip (before, it went back to the closed generation until the next poll)."""
    store.register("raced")
    before = store.view("raced")
    seconds, micros = store._client.time()  # the poll reads first ...
    store.trip("raced", CONFIG, before.gen)  # ... the trip runs and is adopted ...
    store._seed("raced", before, seconds * 1_000_000 + micros)  # ... then the poll's (older) answer arrives
    assert store.view("raced").state is State.OPEN
    assert store.view("raced").gen > before.gen
    store.refresh({"raced"})  # a poll sent after the trip is adopted as before
    assert store.view("raced").state is State.OPEN


def test_closing_a_store_ends_its_sync_thread_waiting_for_a_notice_without_reporting_an_outage(key_prefix, events):
    s = RedisBreakerStore(client(), prefix=key_prefix, sync_interval=5)  # it polls once, then waits on notices
    wait_for(lambda: s._wake_socket is not None)  # subscribed: waiting for a notice
    thread = s._thread
    s.close()  # cuts the subscription's socket: the thread's wait ends now, not at its next timeout
    assert thread is not None and not thread.is_alive()
    assert [e for e in events if e.kind == "store_unavailable"] == []


def test_names_in_use_come_back_to_the_shared_set_after_redis_loses_it(store, key_prefix, test_redis):
    """Found by a fresh-project trial: after Redis restarted without persistence, breakers in use were
    missing from `manage.py breakers` and `breakers open <name>` said unknown, until every server restarted."""
    from tests.waiting import wait_for

    store.register("kept")
    assert test_redis.sismember(f"{key_prefix}:breakers", "kept")
    test_redis.delete(f"{key_prefix}:breakers")  # what a restart without persistence leaves
    assert wait_for(lambda: test_redis.sismember(f"{key_prefix}:breakers", "kept"), timeout=3.0)
