"""The in-process rate-limit store when full: free keys first, then the cheapest limits in force,
least recently used first among equals; a limit that refuses is the last thing it forgets."""

import pytest

from resilience.core.gcra import Limit
from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import policy
from resilience.storage.memory.ratelimit import MemoryRateLimitStore

HOUR = 3600.0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def exhaust(store, limit):
    while store.hit([limit]).allowed:
        pass


def test_a_refusing_limit_outlives_a_flood_of_new_identities(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=100)
    victim = Limit("victim", 5, 60.0, 5)
    exhaust(store, victim)
    for n in range(1_000):
        store.hit([Limit(f"other{n}", 5, 60.0, 5)])
    assert len(store) <= 100
    assert [store.hit([victim]).allowed for _ in range(10)] == [False] * 10


def test_expired_keys_and_past_tats_go_before_any_limit_in_force(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=10)
    for n in range(6):
        store.hit([Limit(f"brief{n}", 1, 1.0, 1)])  # TAT one second ahead, key lives a second
    live = [Limit(f"live{n}", 1, HOUR, 1) for n in range(4)]
    for limit in live:
        store.hit([limit])
    clock.now += 2
    store.hit([Limit("new", 1, HOUR, 1)])  # full: the sweep takes the six that no longer count
    assert len(store) == 5
    assert not any(store.hit([limit]).allowed for limit in live)


def test_among_equal_limits_the_least_recently_used_goes_first(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=8)
    first = Limit("first", 1, HOUR, 1)
    store.hit([first])
    others = [Limit(f"other{n}", 1, HOUR, 1) for n in range(7)]
    for limit in others:
        store.hit([limit])
    assert not store.hit([first]).allowed  # refused, but used: now the most recent
    store.hit([Limit("new", 1, HOUR, 1)])  # full: the two least recently used go (down to 3/4)
    assert not store.hit([first]).allowed  # refusals write nothing: no further sweep below
    assert not any(store.hit([limit]).allowed for limit in others[2:])
    assert [store.hit([limit]).allowed for limit in others[:2]] == [True, True]  # forgotten


def test_rewriting_a_key_moves_it_to_the_back(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=4)
    first = Limit("first", 2, HOUR, 2)
    store.hit([first])
    rest = [Limit(f"k{n}", 2, HOUR, 2) for n in range(3)]
    for limit in rest:
        store.hit([limit])
    for limit in [*rest, first]:  # every key now remembers two requests; "first" rewritten last
        store.hit([limit])
    store.hit([Limit("new", 2, HOUR, 2)])
    assert not store.hit([first]).allowed
    assert store.hit([rest[0]]).allowed  # the least recently written one was forgotten


def test_cool_off_counters_and_penalties_survive_a_flood(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=100)
    cooloff = Limit("pair:victim", 1, 60.0, 3, cost=0)
    failures = [store.penalise(cooloff, "failures:victim", 3600, 86_400.0) for _ in range(5)]
    assert failures == [1, 2, 3, 4, 5]
    clock.now += 120  # the penalised TAT is still ahead; the counter's window is an hour
    for n in range(1_000):
        store.hit([Limit(f"other{n}", 5, 60.0, 5)])
        store.penalise(Limit(f"pair{n}", 1, 60.0, 3, cost=0), f"failures{n}", 3600, 86_400.0)
    assert store.penalise(cooloff, "failures:victim", 3600, 86_400.0) == 6  # the count was kept
    assert not store.hit([cooloff]).allowed
    assert len(store) <= 100


def test_penalties_alone_keep_the_store_bounded(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=100)
    for n in range(1_000):
        store.penalise(Limit(f"pair{n}", 1, 60.0, 3, cost=0), f"failures{n}", 3600, 86_400.0)
    assert len(store) <= 100


def test_a_request_of_several_limits_always_fits(clock):
    store = MemoryRateLimitStore(clock=clock, max_keys=3)
    for n in range(20):
        limits = [Limit(f"{n}:{m}", 1, HOUR, 1) for m in range(3)]
        assert store.hit(limits).allowed
        assert len(store) <= 3
        assert not store.hit(limits).allowed  # all three were stored together


def test_login_username_limit_holds_after_100_000_other_identities_at_the_default_bound(settings):
    """The reviewer's case, through the limiter the login throttle uses, with Redis unset."""
    settings.RESILIENCE = {"REDIS": None, "HISTORY": False}
    limiter = Limiter(None)
    rule = policy("login_username", "10/hour", "login_username", "local")
    tries = [limiter.hit([(rule, "victim")], "t").allowed for _ in range(11)]
    assert tries == [True] * 10 + [False]
    for n in range(100_000):
        limiter.hit([(rule, f"someone-{n}")], "t")
    assert len(limiter.local) <= 100_000
    assert [limiter.hit([(rule, "victim")], "t").allowed for _ in range(10)] == [False] * 10
