"""In-memory expiry: what the memory rate-limit store and stale store forget, and when (fake clocks).

The stores live in resilience/storage; these pin how they apply core/gcra's ``ttl`` and the GCRA
rule that a TAT in the past is no state."""

from types import SimpleNamespace

from resilience.core.gcra import Limit
from resilience.storage.memory import stale
from resilience.storage.memory.ratelimit import MemoryRateLimitStore


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_a_key_lives_until_its_tat_no_longer_matters_then_counts_as_fresh():
    clock = Clock()
    store = MemoryRateLimitStore(clock=clock)
    lim = Limit("k", 1, 10.0, 1)
    assert store.hit([lim]).allowed is True
    assert store.hit([lim]).allowed is False
    clock.now += 9.999
    assert store.hit([lim]).allowed is False
    clock.now += 0.001
    decision = store.hit([lim])
    assert decision.allowed is True and decision.states[0].remaining == 0


def test_a_full_store_sweeps_every_expired_key_and_keeps_those_in_force():
    clock = Clock()
    store = MemoryRateLimitStore(clock=clock, max_keys=8)
    for n in range(6):
        store.hit([Limit(f"brief{n}", 1, 1.0, 1)])
    live = [Limit(f"live{n}", 1, 3600.0, 1) for n in range(2)]
    for lim in live:
        store.hit([lim])
    assert len(store) == 8
    clock.now += 1.0  # the brief keys' TATs are now past: no state
    store.hit([Limit("new", 1, 3600.0, 1)])
    assert len(store) == 3
    assert [store.hit([lim]).allowed for lim in live] == [False, False]


def test_a_sweep_without_expired_keys_frees_a_quarter_of_the_bound():
    clock = Clock()
    store = MemoryRateLimitStore(clock=clock, max_keys=8)
    for n in range(8):
        store.hit([Limit(f"live{n}", 1, 3600.0, 1)])
    store.hit([Limit("new", 1, 3600.0, 1)])
    assert len(store) == 7  # swept to 8 - 8 // 4 = 6, then the new key


def test_no_sweep_while_there_is_room():
    clock = Clock()
    store = MemoryRateLimitStore(clock=clock, max_keys=8)
    for n in range(7):
        store.hit([Limit(f"brief{n}", 1, 1.0, 1)])
    clock.now += 5
    store.hit([Limit("new", 1, 3600.0, 1)])
    assert len(store) == 8  # expired keys are only swept when the store is full


def test_a_failure_counter_counts_until_its_window_ends():
    clock = Clock()
    store = MemoryRateLimitStore(clock=clock)
    lim = Limit("login", 5, 60.0, 5)
    assert [store.penalise(lim, "fails", 30, 300.0) for _ in range(3)] == [1, 2, 3]
    clock.now += 29.999
    assert store.penalise(lim, "fails", 30, 300.0) == 4
    clock.now += 30.0
    assert store.penalise(lim, "fails", 30, 300.0) == 1


def test_a_stale_value_expires_after_its_ttl_and_its_slot_is_reused(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(stale, "time", SimpleNamespace(time=clock))
    store = stale.MemoryStaleStore()
    assert store.set("f", "a", clock.now, "A", 10.0, 2) is True
    assert store.set("f", "b", clock.now, "B", 20.0, 2) is True
    assert store.set("f", "c", clock.now, "C", 10.0, 2) is False  # full
    clock.now += 10.0
    assert store.get("f", "a") == (1_000_000.0, "A")  # expires after, not at, its ttl
    clock.now += 0.001
    assert store.get("f", "a") is None
    assert store.set("f", "c", clock.now, "C", 10.0, 2) is True  # the expired key made room
    assert store.get("f", "b") == (1_000_000.0, "B")
