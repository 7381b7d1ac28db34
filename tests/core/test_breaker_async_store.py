"""Async calls and a remote store: its round trips run off the event loop, a closed breaker's
admission and a local store's never leave it, and a settled ticket stays settled (fake clock)."""

import asyncio
import threading

import pytest

from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig
from resilience.core.clock import FakeClock
from resilience.storage.memory.breaker import MemoryBreakerStore


class ThreadRecordingStore(MemoryBreakerStore):
    """The in-process store, claiming to be remote (or not) and noting which thread asked what."""

    def __init__(self, clock, remote):
        super().__init__(clock)
        self.remote = remote
        self.threads: list[tuple[str, bool]] = []  # (operation, on the event loop's thread)
        self.loop_thread: int | None = None

    def _note(self, op):
        self.threads.append((op, threading.get_ident() == self.loop_thread))

    def acquire(self, *args):
        self._note("acquire")
        return super().acquire(*args)

    def trip(self, *args):
        self._note("trip")
        return super().trip(*args)

    def release(self, *args):
        self._note("release")
        return super().release(*args)


def make(remote, **config):
    clock = FakeClock()
    store = ThreadRecordingStore(clock, remote)
    defaults = {"minimum_calls": 2, "open_for": 10, "half_open_calls": 1}
    return CircuitBreaker("dep", BreakerConfig(**{**defaults, **config}), store, clock=clock), clock, store


def run(store, coro_fn):
    async def main():
        store.loop_thread = threading.get_ident()
        return await coro_fn()

    return asyncio.run(main())


async def afail():
    raise ConnectionError("down")


async def aok():
    return "ok"


async def failures(b, n):
    for _ in range(n):
        with pytest.raises(ConnectionError):
            await b.acall(afail)


@pytest.mark.parametrize("remote", [True, False])
def test_a_closed_breaker_admits_on_the_loop_without_asking_the_store(remote):
    b, _, store = make(remote)

    async def scenario():
        assert await b.acall(aok) == "ok"

    run(store, scenario)
    assert store.threads == []


def test_a_remote_stores_trip_and_probe_round_trips_run_off_the_loop():
    b, clock, store = make(True)

    async def scenario():
        await failures(b, 2)
        clock.advance(10)
        assert await b.acall(aok) == "ok"

    run(store, scenario)
    assert store.threads == [("trip", False), ("acquire", False), ("release", False)]
    assert b.state == "closed"


def test_a_local_stores_round_trips_stay_on_the_loop_but_a_probes_release_is_shielded_in_a_thread():
    b, clock, store = make(False)

    async def scenario():
        await failures(b, 2)
        clock.advance(10)
        assert await b.acall(aok) == "ok"

    run(store, scenario)
    assert store.threads == [("trip", True), ("acquire", True), ("release", False)]  # even a cancelled probe releases


def test_an_open_remote_breaker_rejects_from_a_thread_too():
    b, clock, store = make(True)

    async def scenario():
        await failures(b, 2)
        clock.advance(9.99)  # the last 50 ms: the store decides
        with pytest.raises(Exception, match="open"):
            await b.acall(aok)

    run(store, scenario)
    assert store.threads[-1] == ("acquire", False)


def test_a_ticket_settled_through_a_remote_store_is_done_and_counts_once():
    b, _, store = make(True, minimum_calls=5)

    async def scenario():
        ticket = await b.aadmit()
        await b.afinish(ticket, ConnectionError("down"))
        return ticket

    ticket = run(store, scenario)
    assert ticket.done is True
    b.finish(ticket, ConnectionError("down"))
    assert b.local_stats().calls == 1


@pytest.mark.parametrize("remote", [True])
def test_a_ticket_settled_twice_through_afinish_counts_once_on_a_remote_store_as_on_a_local_one(remote):
    b, _, store = make(remote, minimum_calls=5)

    async def scenario():
        ticket = await b.aadmit()
        await b.afinish(ticket, ConnectionError("down"))
        await b.afinish(ticket, ConnectionError("down"))

    run(store, scenario)
    assert b.local_stats().calls == 1


def test_a_ticket_settled_twice_through_afinish_counts_once_on_a_local_store():
    b, _, store = make(False, minimum_calls=5)

    async def scenario():
        ticket = await b.aadmit()
        await b.afinish(ticket, ConnectionError("down"))
        await b.afinish(ticket, ConnectionError("down"))

    run(store, scenario)
    assert b.local_stats().calls == 1
