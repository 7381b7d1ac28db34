"""Redis dies under the breakers: calls keep flowing on local state, then state re-syncs."""

import threading
import time

import pytest
import redis

from resilience import CircuitOpenError, breakers, circuit_breaker
from tests.waiting import wait_for


@pytest.fixture
def on_own_redis(settings, redis_server):
    settings.RESILIENCE = {
        "REDIS": redis_server.url,
        "REDIS_TIMEOUT": 0.1,
        "SYNC_INTERVAL": 0.2,
        "HISTORY": False,
        "BREAKERS": {"dep": {"minimum_calls": 5, "open_for": 0.5, "half_open_calls": 1}},
    }
    return redis_server


def _fail():
    raise ConnectionError("dependency down")


def test_calls_keep_flowing_and_no_redis_error_reaches_the_caller_when_redis_dies(on_own_redis):
    breaker = circuit_breaker("dep")
    errors: list[BaseException] = []
    latencies: list[float] = []
    stop = threading.Event()
    count = [0]

    def caller():
        while not stop.is_set():
            started = time.monotonic()
            try:
                # a mix that keeps the breaker near its threshold: every call may touch Redis
                breaker.call(_fail if count[0] % 3 == 0 else (lambda: None))
            except (ConnectionError, CircuitOpenError):
                pass
            except BaseException as exc:  # noqa: BLE001 - anything else (a Redis error) fails the test
                errors.append(exc)
            latencies.append(time.monotonic() - started)
            count[0] += 1
            time.sleep(0.001)

    workers = [threading.Thread(target=caller) for _ in range(4)]
    for w in workers:
        w.start()
    assert wait_for(lambda: count[0] >= 200)  # calls flowing through Redis
    before_kill = count[0]
    on_own_redis.kill()
    assert wait_for(lambda: count[0] - before_kill >= 400, timeout=10)  # ... and through the outage
    during_outage = count[0] - before_kill
    stop.set()
    for w in workers:
        w.join(5)
    assert errors == []
    assert during_outage >= 400  # calls kept flowing through the outage
    print(f"redis killed: {during_outage} calls through the outage, slowest {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 0.5, max(latencies)  # bounded by REDIS_TIMEOUT (0.1 s), never a hang


def test_breaker_trips_on_local_state_while_redis_is_down(on_own_redis):
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    on_own_redis.kill()
    for _ in range(4):  # with the success above: 5 calls, 80 % failed
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    time.sleep(0.55)  # open_for (0.5 s) passes on the local fallback's own clock, which `state` does not read
    breaker.call(lambda: None)  # the local half-open probe succeeds
    assert breaker.state == "closed"


def test_state_resyncs_when_redis_comes_back(on_own_redis):
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    on_own_redis.kill()
    breaker.call(lambda: None)
    assert wait_for(lambda: not breakers.store.healthy, timeout=5)  # the outage is noticed
    on_own_redis.start()  # same port, empty server
    other = redis.Redis.from_url(on_own_redis.url)
    # another worker forces the breaker open once Redis is back
    assert wait_for(lambda: breakers.store.healthy, timeout=5)
    from resilience.storage.redis.breaker import RedisBreakerStore

    elsewhere = RedisBreakerStore(other, prefix="resilience", sync_interval=0.2)
    try:
        elsewhere.manual("dep", "force_open")
        assert wait_for(lambda: breaker.state == "forced_open", timeout=2.0)
    finally:
        elsewhere.close()


def test_manual_actions_report_an_unreachable_store_clearly(on_own_redis):
    from resilience.exceptions import StoreUnavailableError

    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    on_own_redis.kill()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        breaker.reset()
    assert time.monotonic() - started < 1.0


@pytest.fixture
def through_proxy(settings, redis_server):
    from tests.faults.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", redis_server.port)
    settings.RESILIENCE = {
        "REDIS": proxy.url(),
        "REDIS_TIMEOUT": 0.1,
        "SYNC_INTERVAL": 0.2,
        "HISTORY": False,
        "BREAKERS": {"dep": {"minimum_calls": 2, "open_for": 0.2, "half_open_calls": 1}},
    }
    yield proxy
    proxy.close()


def _failure_path_latencies(breaker, rounds=6):
    """Drive the breaker through trips and probes (every step needs Redis); time each call."""
    latencies = []
    for _ in range(rounds):
        for fn in (_fail, _fail, lambda: None):
            started = time.monotonic()
            try:
                breaker.call(fn)
            except (ConnectionError, CircuitOpenError):
                pass
            latencies.append(time.monotonic() - started)
        open_until = breaker.view().open_until
        wait_for(lambda u=open_until: breaker._store.now() >= u, timeout=1)  # the next round probes (open_for 0.2 s)
    return latencies


@pytest.mark.parametrize("fault", ["slow", "blackhole"])
def test_a_slow_or_black_holed_redis_costs_a_call_at_most_the_redis_timeout(through_proxy, fault):
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)  # connected and synced through the proxy
    through_proxy.slow(2.0) if fault == "slow" else through_proxy.blackhole()
    latencies = _failure_path_latencies(breaker)
    print(f"{fault}: slowest call {max(latencies) * 1000:.1f} ms of {len(latencies)}")
    assert max(latencies) < 0.25, max(latencies)  # REDIS_TIMEOUT is 0.1 s; a 2 s stall never reaches callers
    assert sum(latency > 0.05 for latency in latencies) <= 2  # after the first timeout, Redis is skipped for a second


def test_state_resyncs_after_the_network_heals(through_proxy, redis_server):
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    through_proxy.blackhole()
    through_proxy.cut()
    with pytest.raises(ConnectionError):
        breaker.call(_fail)  # with the success above: 2 calls, 50 % failed
    assert breaker.state == "open"  # decided locally
    through_proxy.heal()
    from resilience.storage.redis.breaker import RedisBreakerStore

    direct = RedisBreakerStore(redis.Redis(port=redis_server.port), prefix="resilience", sync_interval=0.2)
    try:
        direct.manual("dep", "force_open")
        assert wait_for(lambda: breaker.state == "forced_open", timeout=3.0)
    finally:
        direct.close()
