"""Redis dies under the breakers: calls keep flowing on local state, then state re-syncs."""

import threading
import time

import pytest
import redis

from resilience import CircuitOpenError, breakers, circuit_breaker

from ..waiting import wait_for


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
    time.sleep(0.5)
    before_kill = count[0]
    on_own_redis.kill()
    time.sleep(1.5)
    during_outage = count[0] - before_kill
    stop.set()
    for w in workers:
        w.join(5)
    assert errors == []
    assert during_outage > 100  # calls kept flowing through the outage
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
    time.sleep(0.55)
    breaker.call(lambda: None)  # the local half-open probe succeeds
    assert breaker.state == "closed"


def test_state_resyncs_when_redis_comes_back(on_own_redis):
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    on_own_redis.kill()
    breaker.call(lambda: None)
    time.sleep(0.3)
    on_own_redis.start()  # same port, empty server
    other = redis.Redis.from_url(on_own_redis.url)
    # another worker forces the breaker open once Redis is back
    assert wait_for(lambda: breakers.store.healthy, timeout=5)
    from resilience.storage.redis import RedisBreakerStore

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
