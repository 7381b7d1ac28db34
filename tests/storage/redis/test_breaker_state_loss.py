"""The shared state disappears (Redis restarted empty, keys deleted or evicted, FLUSHDB): no window,
call or trip of the lost state counts again, and no generation number is ever handed out twice."""

import time

import pytest
import redis
from django.conf import settings as django_settings

from resilience import CircuitOpenError, circuit_breaker
from resilience.breakers.registry import breakers
from resilience.ratelimit.limiter import REDIS_BREAKER, Limiter
from resilience.ratelimit.policies import policy
from resilience.storage.redis.client import connect
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.conftest import resilience_settings
from tests.waiting import wait_for

DEP = {"minimum_calls": 3, "failure_rate": 100, "open_for": 30}


def _fail():
    raise ConnectionError("dependency down")


def _generations(events, name="dep"):
    return [e.fields["generation"] for e in events if e.kind == "transition" and e.name == name]


def _trip_at_three_of_three(breaker):
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    assert breaker.state == "open"


def _trip(breaker):
    """Failing calls until the breaker opens (at most three windows' worth). For tests about
    generations, not counts: under load the sync thread may re-read the shared state between two
    calls and start the window afresh, so the third failure is not always the one that trips."""
    for _ in range(9):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
        if breaker.state == "open":
            return
    raise AssertionError("nine failures in a row did not open the breaker")


def _needs_a_full_window_again(breaker):
    """Closed again after the loss: two failures do not trip it, the third (3 of 3) does."""
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
        assert breaker.state == "closed", "an old window counted again"
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)


@pytest.fixture
def own_server(settings, redis_server):
    settings.RESILIENCE = resilience_settings(REDIS=redis_server.url, REDIS_TIMEOUT=0.1, SYNC_INTERVAL=0.1, BREAKERS={"dep": DEP})
    return redis_server


def _back_and_closed(breaker):
    return wait_for(lambda: breakers.store.healthy and breaker.state == "closed", timeout=5.0)


def test_after_redis_restarts_empty_a_tripped_breaker_needs_a_full_window_again(own_server, events):
    breaker = circuit_breaker("dep")
    _trip_at_three_of_three(breaker)
    own_server.kill()
    own_server.start()  # same port, empty
    assert _back_and_closed(breaker)
    _needs_a_full_window_again(breaker)
    gens = _generations(events)
    assert len(gens) == 2 and len(set(gens)) == 2, gens


def test_after_flushdb_a_tripped_breaker_needs_a_full_window_again(own_server, events):
    breaker = circuit_breaker("dep")
    _trip_at_three_of_three(breaker)
    redis.Redis(port=own_server.port).flushdb()  # a test-owned server: nobody else's keys
    assert _back_and_closed(breaker)
    _needs_a_full_window_again(breaker)
    gens = _generations(events)
    assert len(gens) == 2 and len(set(gens)) == 2, gens


@pytest.fixture
def on_shared_redis(settings, key_prefix):
    settings.RESILIENCE = resilience_settings(
        REDIS=django_settings.TEST_REDIS_URL, KEY_PREFIX=key_prefix, SYNC_INTERVAL=0.1, BREAKERS={"dep": DEP}
    )
    yield
    breakers.reload()


def _delete_breaker_keys(client, prefix):
    keys = list(client.scan_iter(f"{prefix}:breaker:*", count=1000))
    assert keys
    client.delete(*keys)


def test_after_its_keys_are_deleted_a_tripped_breaker_needs_a_full_window_again(on_shared_redis, key_prefix, test_redis, events):
    breaker = circuit_breaker("dep")
    _trip_at_three_of_three(breaker)
    _delete_breaker_keys(test_redis, key_prefix)  # as an eviction would
    assert _back_and_closed(breaker)
    _needs_a_full_window_again(breaker)
    gens = _generations(events)
    assert len(gens) == 2 and len(set(gens)) == 2, gens


def test_no_generation_is_ever_seen_twice_across_repeated_state_loss(on_shared_redis, key_prefix, test_redis, events):
    breaker = circuit_breaker("dep")
    seen: list[int] = []  # each generation this process saw, in order, once per stretch

    def look():
        gen = breaker.view().gen
        if not seen or seen[-1] != gen:
            seen.append(gen)

    for _ in range(3):
        look()
        _trip(breaker)
        look()
        breaker.reset()
        look()
        _trip(breaker)
        look()
        _delete_breaker_keys(test_redis, key_prefix)
        assert _back_and_closed(breaker)
        look()
    gens = _generations(events)
    assert len(gens) == 9 and len(set(gens)) == len(gens), gens
    assert len(set(seen)) == len(seen), seen


def test_a_slow_call_of_the_lost_state_cannot_trip_the_new_one(on_shared_redis, key_prefix, test_redis):
    """A call admitted before the loss finishes after it: its generation must not match the new state."""
    breaker = circuit_breaker("dep", minimum_calls=1)
    old_gen = breaker.view().gen
    _delete_breaker_keys_if_any(test_redis, key_prefix)
    breakers.store.refresh()  # the store re-reads: the state is gone, a fresh record starts
    assert breaker.view().gen != old_gen
    change = breakers.store.trip("dep", breaker.config, old_gen)
    assert change[0] is None and breaker.state == "closed"


def _delete_breaker_keys_if_any(client, prefix):
    keys = list(client.scan_iter(f"{prefix}:breaker:*", count=1000))
    if keys:
        client.delete(*keys)


def test_the_ratelimit_breaker_does_not_retrip_on_pre_outage_counts_after_redis_restarts_empty(settings, redis_server, events):
    settings.RESILIENCE = resilience_settings(REDIS=redis_server.url, REDIS_TIMEOUT=0.1, SYNC_INTERVAL=0.1)
    limiter = Limiter(RedisRateLimitStore(connect(redis_server.url, 0.1)))
    rule = policy("ip", {"rate": "1000/min", "fail": "open"}, "x")
    hit = lambda: limiter.hit([(rule, "198.51.100.9")], "t")  # noqa: E731
    assert hit().allowed  # through Redis, counted in the breaker's window
    redis_server.kill()
    for _ in range(4):
        hit()  # fail open; the redis:ratelimit breaker trips on these failures (locally)
    opened = [e for e in events if e.kind == "transition" and e.name == REDIS_BREAKER]
    assert opened and opened[-1].fields["new_state"] == "open"
    redis_server.start()  # same port, empty
    back = len(events)
    probe = redis.Redis(port=redis_server.port)

    def counted_in_redis():
        hit()
        return bool(list(probe.scan_iter("t:rl2:*")))

    assert wait_for(counted_in_redis, timeout=5.0)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # the old window re-tripped it 23-67 ms after recovery
        assert hit().allowed
        time.sleep(0.005)
    reopened = [e.fields for e in events[back:] if e.kind == "transition" and e.fields["new_state"] == "open"]
    assert reopened == []
    assert breakers.get(REDIS_BREAKER).state == "closed"


@pytest.fixture
def through_proxy(settings, redis_server):
    from tests.faults.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", redis_server.port)
    settings.RESILIENCE = resilience_settings(
        REDIS=proxy.url(), REDIS_TIMEOUT=0.1, SYNC_INTERVAL=0.1, BREAKERS={"dep": {**DEP, "open_for": 0.3}}
    )
    yield proxy
    proxy.close()


def test_calls_that_tripped_the_breaker_locally_do_not_trip_the_shared_state_again(through_proxy, events):
    """Redis unreachable, not emptied: the trip is local, and the shared state is still closed in the
    generation those calls were counted in. Once Redis answers, they are spent, not counted again."""
    breaker = circuit_breaker("dep")
    shared_gen = breaker.view().gen  # registered: connected, shared state read
    through_proxy.blackhole()
    through_proxy.cut()
    _trip_at_three_of_three(breaker)  # decided on local state
    assert breaker.view().gen != shared_gen  # the local generation is new too
    through_proxy.heal()
    assert wait_for(lambda: breakers.store.healthy and breaker.view().gen == shared_gen, timeout=5.0)
    assert breaker.state == "closed"
    _needs_a_full_window_again(breaker)
    gens = _generations(events)
    assert len(gens) == len(set(gens)) == 2, gens
