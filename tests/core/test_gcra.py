import pytest

from resilience.core.gcra import Limit, decide
from resilience.exceptions import ConfigurationError


def limit(key="k", rate=10, period=10.0, burst=5, cost=1, policy="p"):
    return Limit(key, rate, period, burst, cost, policy)


def run(limits, now, tats):
    decision, new = decide(limits, [tats.get(lim.key) for lim in limits], now)
    if decision.allowed:
        tats.update({lim.key: t for lim, t in zip(limits, new, strict=True)})
    return decision


def test_burst_is_admitted_at_once_then_one_per_interval():
    tats = {}
    assert [run([limit()], 0.0, tats).allowed for _ in range(6)] == [True] * 5 + [False]
    rejected = run([limit()], 0.0, tats)
    assert rejected.retry_after == pytest.approx(1.0)  # one interval: 10 s / 10 requests
    assert run([limit()], 1.0, tats).allowed and not run([limit()], 1.0, tats).allowed


def test_remaining_counts_down_and_reset_after_grows():
    tats = {}
    states = [run([limit()], 0.0, tats).states[0] for _ in range(3)]
    assert [s.remaining for s in states] == [4, 3, 2]
    assert [s.reset_after for s in states] == pytest.approx([1.0, 2.0, 3.0])


def test_a_rejection_by_one_limit_consumes_nothing_from_the_others():
    tats = {}
    small, big = limit("ip", burst=2), limit("tenant", burst=100)
    results = [run([small, big], 0.0, tats).allowed for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert run([big], 0.0, tats).states[0].remaining == 97  # only the two admitted requests counted


def test_costs_weigh_requests():
    tats = {}
    assert run([limit(cost=3)], 0.0, tats).allowed
    assert not run([limit(cost=3)], 0.0, tats).allowed
    assert run([limit(cost=2)], 0.0, tats).allowed


@pytest.mark.parametrize("bad", [{"rate": 0}, {"period": 0}, {"burst": 0}, {"cost": 6}, {"rate": 1.5}, {"cost": -1}])
def test_malformed_limits_are_refused(bad):
    with pytest.raises(ConfigurationError, match="rate limit 'p'"):
        limit(**bad)


def test_intervals_are_whole_microseconds_shared_by_both_engines():
    assert limit(rate=3, period=1.0, burst=3).wire == (333_333, 999_999)  # 3/s is 3.000003/s
    assert limit(rate=3, period=1.0, burst=3).interval == 0.333333
    assert Limit("k", 1_000_000, 60.0, 1_000_000).wire == (60, 60_000_000)


@pytest.mark.parametrize(
    ("rate", "period", "burst", "message"),
    [
        (2_000_000, 1.0, 1, "finer than one request per microsecond"),
        (1, 366 * 86_400.0, 2, "lasts over 366 days"),
        (10, 60.0, 10 * 527_041, "lasts over 366 days"),
    ],
)
def test_limits_the_microsecond_grid_cannot_hold_exactly_are_refused(rate, period, burst, message):
    with pytest.raises(ConfigurationError, match=message):
        Limit("k", rate, period, burst, 0, "p")
