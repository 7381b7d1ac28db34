"""The limiter: all-or-nothing decisions and each fail mode with a real redis-server killed mid-run."""

import logging
import time

import pytest

from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import parse_rate, policy
from resilience.storage.redis.client import connect
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.waiting import wait_for


@pytest.fixture
def own_redis(settings, redis_server):
    settings.RESILIENCE = {"HISTORY": False}
    return redis_server


def limiter_on(server):
    return Limiter(RedisRateLimitStore(connect(server.url, 0.1)))


@pytest.mark.parametrize(
    ("fail", "expected"), [("open", [True] * 4), ("closed", [False] * 4), ("local", [True, True, False, False])]
)
def test_each_fail_mode_when_redis_dies(own_redis, fail, expected):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "2/min", "fail": fail}, "x")
    assert limiter.hit([(rule, "198.51.100.9")], "t").allowed  # through Redis: 1 of 2 used there
    own_redis.kill()
    started = time.monotonic()
    answers = [limiter.hit([(rule, "198.51.100.9")], "t") for _ in range(4)]
    assert time.monotonic() - started < 0.5  # REDIS_TIMEOUT-bounded, then the breaker skips Redis
    assert [a.allowed for a in answers] == expected
    if fail == "closed":
        assert answers[0].retry_after == 1.0


def test_decisions_go_back_to_redis_within_two_seconds_of_recovery(own_redis, test_redis):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "100/min", "fail": "local"}, "x")
    own_redis.kill()
    for _ in range(5):
        limiter.hit([(rule, "198.51.100.9")], "t")
    own_redis.start()
    back = time.monotonic()
    import redis

    probe = redis.Redis(port=own_redis.port)

    def counted_in_redis():
        limiter.hit([(rule, "198.51.100.9")], "t")
        return bool(list(probe.scan_iter("t:rl2:*")))

    assert wait_for(counted_in_redis, timeout=3.0)
    assert time.monotonic() - back < 2.0


def test_shadow_policies_report_but_never_refuse(own_redis, caplog):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "1/min", "shadow": True}, "x")
    with caplog.at_level(logging.INFO, logger="resilience"):
        answers = [limiter.hit([(rule, "198.51.100.9")], "t").allowed for _ in range(3)]
    assert answers == [True, True, True]
    assert any("ratelimit shadow_rejected" in r.getMessage() for r in caplog.records)


def test_a_shadow_limit_beside_an_enforced_one_never_refuses_and_consumes_nothing_itself(own_redis, caplog):
    """Found by a README audit: one shadow policy among enforced ones made the whole decision refuse."""
    limiter = limiter_on(own_redis)
    shadow, enforced = policy("ip", {"rate": "1/min", "shadow": True}, "x"), policy("route", "3/min", "x")
    pairs = [(shadow, "198.51.100.9"), (enforced, "198.51.100.9")]
    with caplog.at_level(logging.INFO, logger="resilience"):
        answers = [limiter.hit(pairs, "t").allowed for _ in range(4)]
    assert answers == [True, True, True, False]  # the enforced 3/min decides; the shadow 1/min only reports
    lines = [r.getMessage() for r in caplog.records]
    assert any("ratelimit shadow_rejected name=ip " in line for line in lines)  # repeats are summarised
    assert any("ratelimit rejected name=route " in line for line in lines)
    assert not any("ratelimit rejected" in line and "name=ip" in line for line in lines)
    refused = limiter.hit(pairs, "t")
    assert not refused.allowed and 15 < refused.retry_after <= 20  # the enforced limit's wait (1 per 20 s)
    assert [s.limit.policy for s in refused.states] == ["route"]


@pytest.mark.parametrize("shadow_fail", ["closed", "local"])
def test_a_shadow_limits_fail_mode_never_decides_for_the_enforced_ones_in_an_outage(own_redis, shadow_fail):
    """Found by verifying the fix above in a fresh project: a shadow limit failing closed made a Redis
    outage refuse every request, although the enforced limits fail open."""
    limiter = limiter_on(own_redis)
    shadow = policy("ip", {"rate": "1/min", "shadow": True, "fail": shadow_fail}, "x")
    enforced = policy("route", {"rate": "2/min", "fail": "open"}, "x")
    own_redis.kill()
    assert [limiter.hit([(shadow, "a"), (enforced, "a")], "t").allowed for _ in range(5)] == [True] * 5  # open, as the route says


def test_a_refusal_by_shadow_limits_only_leaves_them_unconsumed():
    limiter = Limiter(None)
    shadow, enforced = policy("ip", {"rate": "1/min", "shadow": True}, "x"), policy("route", "100/min", "x")
    assert limiter.hit([(shadow, "a"), (enforced, "a")], "p").allowed  # both consumed: 1 of 1, 1 of 100
    for _ in range(5):
        assert limiter.hit([(shadow, "a"), (enforced, "a")], "p").allowed  # the shadow refuses: route alone
    assert limiter.local.hit([enforced.limit("a", "p", 0)]).states[0].remaining == 94


def test_a_rate_of_zero_refuses_everything_without_consuming_other_limits():
    """DRF and django-ratelimit read "0/min" as "refuse everything"; so does this limiter."""
    assert parse_rate("0/min", "x") == (0, 60.0, 0)
    limiter = Limiter(None)
    closed, other = policy("ip", "0/min", "x"), policy("tenant", "1/min", "x")
    decision = limiter.hit([(other, "t"), (closed, "1.2.3.4")], "pfx")
    assert not decision.allowed and decision.retry_after == 60.0
    assert limiter.hit([(other, "t")], "pfx").allowed  # the refused request consumed nothing from "tenant"


def test_a_redis_outage_costs_a_bounded_number_of_log_lines(own_redis, caplog):
    """Once, every decision during an outage was a store_unavailable WARNING (2,200-2,700 lines in 5.5 s)."""
    import logging

    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "100000/min", "fail": "open"}, "x")
    assert limiter.hit([(rule, "a")], "pfx").allowed
    own_redis.kill()
    with caplog.at_level(logging.INFO, logger="resilience"):
        decisions = [limiter.hit([(rule, f"client-{n}")], "pfx").allowed for n in range(2000)]
    assert all(decisions)  # fail open, as configured
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("resilience.")]
    unavailable = [line for line in lines if line.startswith("ratelimit store_unavailable")]
    transitions = [line for line in lines if line.startswith("breaker transition")]
    assert len(unavailable) == 1  # the first; the rest are folded into one summary a minute
    assert len(lines) <= len(transitions) + 2 and len(transitions) <= 4  # redis:ratelimit opens, probes, opens...


def test_a_stalled_redis_costs_a_few_slow_decisions_not_seconds_of_them(own_redis):
    """Found by a fresh-project trial: Redis stopped (SIGSTOP, not dead) after a busy minute cost every
    request REDIS_TIMEOUT for 5-8 s, because the rate-limit breaker weighed the timeouts against a
    10-second window full of earlier successes. It now trips on the last calls, as resilience4j's
    count-based window does."""
    from tests.faults.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", own_redis.port)
    try:
        limiter = limiter_on(type("Via", (), {"url": proxy.url()})())
        rule = policy("ip", {"rate": "100000/min", "fail": "open"}, "x")
        for n in range(300):  # a busy process: the window is full of successes
            assert limiter.hit([(rule, f"client-{n}")], "pfx").allowed
        proxy.blackhole()
        slow = 0
        for n in range(40):
            started = time.monotonic()
            assert limiter.hit([(rule, f"client-{n}")], "pfx").allowed  # fail open, as configured
            slow += time.monotonic() - started >= 0.05
        assert slow <= 5  # five timeouts in the last ten calls open the breaker: every later decision is local
    finally:
        proxy.heal()
        proxy.close()


def test_connections_the_server_closed_while_idle_cost_no_decision_its_fail_mode(own_redis):
    """Found by a fresh-project trial: after CLIENT KILL (or a Redis restart, or its idle timeout) each
    pooled connection failed one decision, so fail-open limits admitted over their limit, and a burst
    of them tripped the redis:ratelimit breaker: a second of admitting everything."""
    from concurrent.futures import ThreadPoolExecutor

    import redis

    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "5/min", "fail": "open"}, "x")
    with ThreadPoolExecutor(4) as pool:  # several connections in the idle stack
        list(pool.map(lambda n: limiter.hit([(rule, f"warm-{n}")], "t"), range(40)))
    killed = redis.Redis(port=own_redis.port).client_kill_filter(_type="normal", skipme=True)
    assert killed >= 2
    answers = [limiter.hit([(rule, "198.51.100.7")], "t").allowed for _ in range(10)]
    assert answers == [True] * 5 + [False] * 5  # every decision in Redis, exact
