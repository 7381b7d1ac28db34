"""The fallback chain's events, stale-value keys, caps and policy bounds, against a recording store."""

import asyncio

import pytest

from resilience.core.event import Event
from resilience.core.fallback import (
    DEFAULT_MAX_STALE_KEYS,
    FULL_REPORT_INTERVAL,
    MAX_STALE_KEYS,
    FallbackChain,
    FallbackPolicy,
    StaleNotices,
)
from resilience.exceptions import ConfigurationError


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class RecordingStore:
    """Keeps (stored_at, value) per (group, key); ``keep=False`` refuses new keys, ``refuse`` raises."""

    def __init__(self, keep=True, refuse=None):
        self.values, self.sets, self.keep, self.refuse = {}, [], keep, refuse

    def get(self, group, key):
        return self.values.get((group, key))

    def set(self, group, key, stored_at, value, ttl, max_keys):
        self.sets.append((group, key, stored_at, value, ttl, max_keys))
        if self.refuse is not None:
            raise self.refuse
        if self.keep:
            self.values[(group, key)] = (stored_at, value)
        return self.keep


def make(policy, store=None, scope="t:a", clock=None, **kwargs):
    events = []
    store = RecordingStore() if store is None else store
    c = FallbackChain(policy, store=store, scope_key=lambda s: scope, emit=events.append, clock=clock or Clock(), **kwargs)
    return c, store, events


def fail(*args, **kwargs):
    raise ConnectionError("down")


def kinds(events):
    return [e.kind for e in events]


def test_the_primarys_answer_is_no_event_and_is_kept_with_the_policys_ttl_and_the_default_cap():
    assert DEFAULT_MAX_STALE_KEYS == 1000
    c, store, events = make(FallbackPolicy("f", stale_for=60))
    assert c.call(lambda x: x * 2, 21) == 42
    assert events == []
    assert store.sets == [("f", "f|t:a|(21,)|[]", 1000.0, 42, 60, 1000)]


def test_the_policys_cap_wins_over_the_chains_and_the_chains_over_the_default():
    c, store, _ = make(FallbackPolicy("f", stale_for=60, max_stale_keys=7), max_stale_keys=50)
    c.call(lambda: 1)
    c2, store2, _ = make(FallbackPolicy("f", stale_for=60), max_stale_keys=50)
    c2.call(lambda: 1)
    assert (store.sets[0][5], store2.sets[0][5]) == (7, 50)


def test_the_stale_key_names_the_fallback_the_scope_the_arguments_and_the_sorted_keywords():
    c, store, _ = make(FallbackPolicy("f", stale_for=60), scope="t:b")
    c.call(lambda *a, **k: 0, 1, "x", z=1, a=2)
    assert store.sets[0][1] == "f|t:b|(1, 'x')|[('a', 2), ('z', 1)]"


def test_each_argument_tuple_has_its_own_stale_value():
    clock = Clock()
    c, _, _ = make(FallbackPolicy("f", stale_for=60), clock=clock)
    c.call(lambda x: f"v{x}", 1)
    c.call(lambda x: f"v{x}", 2)
    assert (c.call(fail, 2), c.call(fail, 1)) == ("v2", "v1")


@pytest.mark.parametrize("store_none", [True, False])
def test_without_a_store_or_without_stale_for_nothing_is_kept_or_read(store_none):
    policy = FallbackPolicy("f", default="d") if not store_none else FallbackPolicy("f", stale_for=60, default="d")
    store = RecordingStore()
    events = []
    c = FallbackChain(policy, store=None if store_none else store, scope_key=lambda s: "t:a", emit=events.append)
    assert c.call(lambda: "fresh") == "fresh"
    assert store.sets == []
    assert c.call(fail) == "d"
    assert kinds(events) == ["default"]


def test_an_unknown_scope_neither_writes_nor_reads():
    store = RecordingStore()
    store.values[("f", "f|None|()|[]")] = (1000.0, "planted")
    c, _, _ = make(FallbackPolicy("f", stale_for=60, default="d"), store=store, scope=None)
    assert c.call(lambda: "fresh") == "fresh"
    assert store.sets == []
    assert c.call(fail) == "d"


def test_the_scope_key_is_asked_for_the_policys_scope():
    asked = []
    c = FallbackChain(FallbackPolicy("f", scope="user"), store=RecordingStore(), scope_key=lambda s: asked.append(s))
    c.call(lambda: 1)
    assert asked == ["user"]


def test_a_stale_value_is_served_up_to_exactly_stale_for_seconds_with_its_age():
    clock = Clock()
    c, _, events = make(FallbackPolicy("f", stale_for=60, default="d"), clock=clock)
    c.call(lambda: "fresh")
    clock.now += 12.34567
    assert c.call(fail) == "fresh"
    assert events[-1] == Event("fallback", "stale", "f", {"age": 12.346})
    clock.now = 1060.0
    assert c.call(fail) == "fresh"
    clock.now = 1060.001
    assert c.call(fail) == "d"
    assert events[-1] == Event("fallback", "default", "f", {"error": "ConnectionError"})


def test_exhausted_names_the_error_and_raises_that_very_error():
    c, _, events = make(FallbackPolicy("f", alternatives=(fail,)))
    error = KeyError("last")

    def primary():
        raise error

    c2, _, events2 = make(FallbackPolicy("f", on=(KeyError,)))
    with pytest.raises(KeyError) as raised:
        c2.call(primary)
    assert raised.value is error
    assert events2 == [Event("fallback", "exhausted", "f", {"error": "KeyError"})]
    with pytest.raises(ConnectionError):
        c.call(fail)
    assert events == [Event("fallback", "exhausted", "f", {"error": "ConnectionError"})]


def test_an_alternatives_answer_names_its_step_and_the_error_before_it_and_is_kept():
    c, store, events = make(FallbackPolicy("f", alternatives=(lambda: "alt",), stale_for=60))
    assert c.call(fail) == "alt"
    assert events == [Event("fallback", "alternative", "f", {"step": 1, "error": "ConnectionError"})]
    assert [s[3] for s in store.sets] == ["alt"]


def test_a_value_json_cannot_hold_is_reported_once_with_its_type_and_a_short_error():
    store = RecordingStore(refuse=TypeError("x" * 200))
    notices = StaleNotices()
    c, _, events = make(FallbackPolicy("f", stale_for=60), store=store, notices=notices)
    assert c.call(lambda: {1, 2}) == {1, 2}
    assert c.call(lambda: {3}) == {3}
    assert events == [Event("fallback", "not_storable", "f", {"type": "set", "error": "x" * 120})]
    assert notices.unstorable_reported is True
    assert notices.refused == 0 and notices.full_reported_at is None


def test_a_refused_new_key_is_stale_full_at_most_once_a_minute_with_the_count_since():
    assert FULL_REPORT_INTERVAL == 60.0
    clock = Clock()
    c, _, events = make(FallbackPolicy("f", stale_for=60), store=RecordingStore(keep=False), clock=clock, max_stale_keys=5)
    c.call(lambda: 1)
    assert events == [Event("fallback", "stale_full", "f", {"max_keys": 5, "refused": 1})]
    assert c.notices.full_reported_at == 1000.0 and c.notices.refused == 0
    clock.now = 1059.999
    c.call(lambda: 1)
    c.call(lambda: 1)
    assert len(events) == 1 and c.notices.refused == 2
    clock.now = 1060.0
    c.call(lambda: 1)
    assert events[-1] == Event("fallback", "stale_full", "f", {"max_keys": 5, "refused": 3})
    assert c.notices.full_reported_at == 1060.0 and c.notices.refused == 0


def test_a_kept_value_is_no_stale_full():
    c, _, events = make(FallbackPolicy("f", stale_for=60))
    c.call(lambda: 1)
    assert events == [] and c.notices.refused == 0


def test_chains_sharing_notices_report_an_unstorable_value_once_between_them():
    notices = StaleNotices()
    store = RecordingStore(refuse=ValueError("circular"))
    a, _, events_a = make(FallbackPolicy("f", stale_for=60), store=store, notices=notices)
    b, _, events_b = make(FallbackPolicy("f", stale_for=60), store=store, notices=notices)
    a.call(lambda: 1)
    b.call(lambda: 1)
    assert (len(events_a), len(events_b)) == (1, 0)


def test_async_chain_events_stale_values_default_and_exhaustion():
    async def afail(*args):
        raise ConnectionError("down")

    async def fresh(x):
        return f"v{x}"

    clock = Clock()
    c, store, events = make(FallbackPolicy("f", stale_for=60, default="d"), clock=clock)
    assert asyncio.run(c.acall(fresh, 1)) == "v1"
    assert events == [] and store.sets[0][1] == "f|t:a|(1,)|[]"
    clock.now += 5
    assert asyncio.run(c.acall(afail, 1)) == "v1"
    assert asyncio.run(c.acall(afail, 2)) == "d"
    assert kinds(events) == ["stale", "default"]

    async def alt(x):
        return "alt"

    c2, _, events2 = make(FallbackPolicy("f", alternatives=(afail, alt)))
    assert asyncio.run(c2.acall(afail, 1)) == "alt"
    assert events2 == [Event("fallback", "alternative", "f", {"step": 2, "error": "ConnectionError"})]
    c3, _, events3 = make(FallbackPolicy("f", on=(ConnectionError,)))
    with pytest.raises(ConnectionError):
        asyncio.run(c3.acall(afail))
    assert kinds(events3) == ["exhausted"]


def test_async_chain_lets_errors_outside_on_through():
    async def bug():
        raise KeyError("bug")

    c, _, events = make(FallbackPolicy("f", default=0, on=(ConnectionError,)))
    with pytest.raises(KeyError):
        asyncio.run(c.acall(bug))
    assert events == []


@pytest.mark.parametrize("stale_for", [0.001, 1, 30 * 86_400])
def test_stale_for_may_be_any_positive_number_up_to_thirty_days(stale_for):
    assert FallbackPolicy("f", stale_for=stale_for).stale_for == stale_for


@pytest.mark.parametrize("stale_for", [0, -1, 30 * 86_400 + 0.5, True, "60", float("nan")])
def test_stale_for_outside_thirty_days_or_not_a_number_is_refused(stale_for):
    with pytest.raises(ConfigurationError, match="fallback 'f': stale_for must be seconds above 0"):
        FallbackPolicy("f", stale_for=stale_for)


@pytest.mark.parametrize("cap", [1, MAX_STALE_KEYS])
def test_max_stale_keys_may_be_from_1_to_a_million(cap):
    assert MAX_STALE_KEYS == 1_000_000
    assert FallbackPolicy("f", max_stale_keys=cap).max_stale_keys == cap


@pytest.mark.parametrize("cap", [0, -1, MAX_STALE_KEYS + 1, True, 1.0, "5"])
def test_max_stale_keys_outside_1_to_a_million_or_not_whole_is_refused(cap):
    with pytest.raises(ConfigurationError, match="fallback 'f': max_stale_keys must be a whole number from 1 to 1000000"):
        FallbackPolicy("f", max_stale_keys=cap)


@pytest.mark.parametrize("scope", ["tenant", "user", "public"])
def test_every_documented_scope_is_accepted(scope):
    assert FallbackPolicy("f", scope=scope).scope == scope
