"""Breaker state shared by every worker through Redis.

Hot path: ``view()`` reads a local copy. A background thread keeps that copy fresh (pub/sub for
changes, a full poll every ``sync_interval`` as a safety net). Transitions run as Lua scripts on
Redis's own clock, so one process wins each race. When Redis is slow or down, operations fall back
to the in-process state machine seeded with the last known state; callers never see a Redis error.
The outage and its end are one ``storage store_unavailable``/``store_recovered`` event each (``health``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Decision, Outcome, State, StateView
from resilience.core.event import EventSink
from resilience.core.ports import BreakerStore, Change
from resilience.core.windows import WindowSnapshot
from resilience.exceptions import StoreUnavailableError
from resilience.observability import events
from resilience.storage.keys import digest
from resilience.storage.memory.breaker import MemoryBreakerStore
from resilience.storage.redis.cluster import by_node, know_node, refresh_slots, reset_after_fork
from resilience.storage.redis.health import REDIS_ERRORS, StoreHealth
from resilience.storage.redis.scripts import BreakerArgs, BreakerKeys, NamesAddArgs, NamesAddKeys, breaker_scripts, names_add

logger = logging.getLogger("resilience.storage")

MAX_SHARED_NAMES = 10_000  # names listed for every process (hosts of ResilientSession come from client input)
_STATES = {s.value: s for s in State}


def _hash_tag(name: str) -> str:
    return digest(name, 20)


class _OffsetClock:
    """Local wall clock shifted to Redis time, for the local fallback state machine."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + self.offset


class RedisBreakerStore(BreakerStore):
    """Breaker state in Redis, read locally; ``emit`` receives the outage events."""

    remote = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "resilience",
        sync_interval: float = 0.5,
        retry_interval: float = 1.0,
        state_ttl: int = 30 * 86_400,
        stats_source: Callable[[], dict[str, WindowSnapshot]] | None = None,
        emit: EventSink = events.emit,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._channel = f"{prefix}:breaker-changes"
        self._names_key = f"{prefix}:breakers"
        self._sync_interval = sync_interval
        self._retry_interval = retry_interval
        self._ttl = state_ttl
        self.stats_source = stats_source
        self._health = StoreHealth("breaker", emit, retry_interval)  # Redis is skipped while unhealthy
        self._clock = _OffsetClock()
        self._local = MemoryBreakerStore(self._clock)
        self._scripts = breaker_scripts(client)
        self._names_add = names_add(client)
        self._registered: set[str] = set()
        self._names_due = 0.0  # monotonic time this process's names are written to the shared set again
        self._adopted: dict[str, tuple[int, int]] = {}  # name -> (Redis µs, gen) of the newest read adopted
        self._adopt_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_socket: Any = None  # the sync thread's subscription socket: close() shuts it to wake the thread
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        _STORES.add(self)
        self._start()

    # -- keys -----------------------------------------------------------------------------
    def _base_key(self, name: str) -> str:
        return f"{self._prefix}:breaker:{{{_hash_tag(name)}}}"

    def _keys(self, name: str) -> BreakerKeys:
        return BreakerKeys(state=self._base_key(name))

    def _stats_key(self, name: str) -> str:
        return self._base_key(name) + ":stats"

    # -- health ---------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """False for ``retry_interval`` after Redis failed; operations run on local state meanwhile."""
        return self._health.healthy

    def _failed(self, exc: BaseException) -> None:
        self._health.failed(exc, fallback="local")
        with self._adopt_lock:  # the server that answers next may be another, on another clock
            self._adopted.clear()

    # -- contract -------------------------------------------------------------------------
    def view(self, name: str) -> StateView:
        """The last known state: the local copy the sync thread keeps fresh (never Redis)."""
        return self._local.view(name)

    def view_reader(self) -> Callable[[str], StateView]:
        """The local copy's own ``view``, unless a subclass reads another way."""
        return self._local.view if type(self).view is RedisBreakerStore.view else self.view

    def now(self) -> float:
        return self._clock.wall()

    def _args(
        self,
        name: str,
        config: BreakerConfig | None,
        *,
        gen: int | None = None,
        permit: str = "",
        permit_ttl: float = 0,
        arg: str = "",
    ) -> BreakerArgs:
        """The scripts' arguments. ``gen`` defaults to the last known generation: a record created
        afresh starts above it. Without a config (manual, view) the breaker settings are unused."""
        c = config
        return BreakerArgs(
            name=name,
            channel=self._channel,
            ttl=self._ttl,
            open_for=c.open_for if c else 0,
            multiplier=c.open_for_multiplier if c else 1,
            open_for_max=c.open_for_max if c and c.open_for_max is not None else 86_400,
            half_open_calls=c.half_open_calls if c else 1,
            permit_ttl=permit_ttl,
            gen=self._local.view(name).gen if gen is None else gen,
            permit=permit,
            arg=arg,
        )

    def _run(self, op: str, name: str, args: BreakerArgs) -> list[Any] | None:
        if not self.healthy:
            return None
        try:
            reply = self._scripts[op](self._keys(name), args)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return None
        self._health.succeeded()
        return reply  # type: ignore[no-any-return]

    def _seed(self, name: str, view: StateView, read_at: int) -> None:
        """Adopt what Redis read at ``read_at`` (its clock, µs) unless a later read was adopted already:
        the sync thread's poll, read before a trip and answered after it, must not put the old
        generation back. Redis runs one command at a time, so its clock orders the reads."""
        with self._adopt_lock:
            if (read_at, view.gen) < self._adopted.get(name, (-1, -1)):
                return
            self._adopted[name] = (read_at, view.gen)
            self._local.seed(name, view)

    def _adopt(self, name: str, reply: list[Any]) -> tuple[State | None, StateView]:
        changed = _text(reply[0])
        view = StateView(
            _STATES.get(_text(reply[1]), State.CLOSED),
            int(reply[2]), float(reply[3]), float(reply[4]), int(reply[5]),
        )  # fmt: skip
        self._clock.offset = float(reply[6]) - time.time()
        self._seed(name, view, int(reply[10]))
        return (_STATES[changed] if changed else None), view

    def acquire(self, name: str, config: BreakerConfig, permit_id: str, permit_ttl: float) -> Decision:
        reply = self._run("acquire", name, self._args(name, config, permit=permit_id, permit_ttl=permit_ttl))
        if reply is None:
            return self._local.acquire(name, config, permit_id, permit_ttl)
        changed, view = self._adopt(name, reply)
        retry = _text(reply[9])
        return Decision(bool(reply[7]), bool(reply[8]), float(retry) if retry else None, view, changed)

    def trip(self, name: str, config: BreakerConfig, expected_gen: int) -> Change:
        reply = self._run("trip", name, self._args(name, config, gen=expected_gen))
        if reply is None:
            return self._local.trip(name, config, expected_gen)
        return self._adopt(name, reply)

    def release(self, name: str, config: BreakerConfig, gen: int, permit_id: str, outcome: Outcome) -> Change:
        reply = self._run("release", name, self._args(name, config, gen=gen, permit=permit_id, arg=outcome.value))
        if reply is None:
            return self._local.release(name, config, gen, permit_id, outcome)
        return self._adopt(name, reply)

    def manual(self, name: str, op: str) -> Change:
        """Manual actions must reach every process: unlike calls, they raise if Redis is down."""
        try:
            reply = self._scripts["manual"](self._keys(name), self._args(name, None, arg=op))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise StoreUnavailableError(f"redis did not answer: {type(exc).__name__}") from exc
        self._health.succeeded()
        return self._adopt(name, reply)

    def register(self, name: str) -> None:
        """Announce the name and read its shared state now: a new process must not start "closed"
        on a breaker every other worker has open (one round trip, once per breaker per process)."""
        self._local.register(name)
        if name in self._registered or not self.healthy:
            return
        try:
            self._add_name(name)
            self.refresh({name})
        except REDIS_ERRORS as exc:
            self._failed(exc)
        else:
            self._health.succeeded()
            self._registered.add(name)

    def _add_name(self, name: str) -> None:
        self._names_add(NamesAddKeys(names=self._names_key), NamesAddArgs(name=name, max_names=MAX_SHARED_NAMES, ttl=self._ttl))

    def _keep_names(self) -> None:
        """This process's names in the shared set again when it is gone (Redis restarted without
        persistence) or every half ``STATE_TTL`` (it expires): else breakers in use drop out of
        ``manage.py breakers`` and the admin, and cannot be forced by name. On the sync thread's poll."""
        if not self._registered:
            return
        now = time.monotonic()
        if now < self._names_due and self._client.exists(self._names_key):
            return
        for name in list(self._registered):  # a copy: register() adds from other threads
            self._add_name(name)
        self._names_due = now + self._ttl / 2

    def names(self) -> set[str]:
        names = self._local.names()
        try:
            members = self._client.smembers(self._names_key)
            names |= {n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in members}
        except REDIS_ERRORS as exc:
            self._failed(exc)
        return names

    def shared_stats(self, name: str) -> WindowSnapshot | None:
        try:
            rows = self._client.hgetall(self._stats_key(name))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return None
        fresh_after = time.time() - max(10 * self._sync_interval, 5.0)
        calls = failures = slow = 0
        for value in rows.values():
            ts, c, f, s = _text(value).split(",")
            if float(ts) >= fresh_after:
                calls, failures, slow = calls + int(c), failures + int(f), slow + int(s)
        return WindowSnapshot(calls, failures, slow)

    # -- synchronisation ----------------------------------------------------------------
    def refresh(self, names: set[str] | None = None) -> None:
        """Read the shared state of ``names`` (default: every breaker of this process) in one round
        trip (one per node on a cluster: each node's rows are read on that node's clock)."""
        ordered = sorted(self._local.names() if names is None else names)
        lost = []
        for client, indices in by_node(self._client, [self._keys(name).state for name in ordered]):
            lost += self._read(client, [ordered[i] for i in indices])
        if lost:
            self._start_afresh(lost)

    def _read(self, client: Any, names: list[str]) -> list[str]:
        """Adopt the rows of ``names``, all served by ``client``; the names that have no record."""
        fields = ("state", "gen", "open_until", "since", "trips")
        pipe = client.pipeline(transaction=False)
        pipe.time()
        for name in names:
            pipe.hmget(self._keys(name).state, *fields)
        results = pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            if index and isinstance(result, redis.exceptions.AskError):
                # the row's slot is migrating (ASK) or has moved (MOVED) off this node: the cluster client
                # follows it (and learns a move). Read after TIME: at least as new as ``read_at`` says.
                know_node(self._client, result.host, result.port)
                results[index] = self._client.hmget(self._keys(names[index - 1]).state, *fields)
            elif isinstance(result, Exception):
                raise result
        seconds, micros = results[0]  # read just before the rows: a trip after it can only be newer
        self._clock.offset = seconds + micros / 1e6 - time.time()
        read_at = seconds * 1_000_000 + micros
        lost = []
        for name, row in zip(names, results[1:], strict=True):
            state, gen, open_until, since, trips = (_text(v) if v is not None else None for v in row)
            if gen is None:  # no state: first use, or lost (restarted empty, evicted, deleted)
                lost.append(name)
                continue
            view = StateView(
                _STATES.get(state or "closed", State.CLOSED),
                int(gen), float(open_until or 0), float(since or 0), int(trips or 0),
            )  # fmt: skip
            self._seed(name, view, read_at)
        return lost

    def _start_afresh(self, names: list[str]) -> None:
        """Create the missing records (one round trip per node), each in a generation nobody has seen, and adopt them."""
        for client, indices in by_node(self._client, [self._keys(name).state for name in names]):
            group = [names[i] for i in indices]
            pipe = client.pipeline(transaction=False)
            for name in group:
                self._scripts["view"](self._keys(name), self._args(name, None), client=pipe)
            for name, reply in zip(group, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, redis.exceptions.AskError):  # its slot migrates or moved: as in _read
                    know_node(self._client, reply.host, reply.port)
                    reply = self._scripts["view"](self._keys(name), self._args(name, None))
                elif isinstance(reply, Exception):
                    raise reply
                self._adopt(name, reply)

    def _push_stats(self) -> None:
        source = self.stats_source
        if source is None:
            return
        stats = source()
        if not stats:
            return
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for name, snap in stats.items():
            key = self._stats_key(name)
            pipe.hset(key, self._process, f"{now:.3f},{snap.calls},{snap.failures},{snap.slow}")
            pipe.expire(key, max(int(30 * self._sync_interval), 60))
        pipe.execute()

    def _start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._sync_loop, name="resilience-breaker-sync", daemon=True)
        self._thread.start()

    def _sync_loop(self) -> None:
        pubsub = None
        next_poll = 0.0
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self._channel)
                    # this socket object, not the connection: once the pubsub closes, the connection
                    # goes back to the pool and may carry another socket, someone else's
                    self._wake_socket = getattr(pubsub.connection, "_sock", None)
                    next_poll = 0.0
                wait = max(next_poll - time.monotonic(), 0.0)
                message = pubsub.get_message(timeout=min(wait, 0.25)) if wait else None
                if message and message.get("type") == "message":
                    name = _text(message["data"])
                    if name in self._local.names():
                        self.refresh({name})
                if time.monotonic() >= next_poll:
                    self.refresh()
                    self._push_stats()
                    self._keep_names()
                    next_poll = time.monotonic() + self._sync_interval
                self._health.succeeded()
            except REDIS_ERRORS as exc:
                if self._stop.is_set():  # close() cut the subscription's socket: not an outage
                    break
                self._failed(exc)
                refresh_slots(self._client)  # on a cluster a replica may have taken over: read the slot map again
                if pubsub is not None:
                    _quietly(pubsub.close)
                    pubsub = None
                self._stop.wait(min(self._retry_interval, 0.5))
            except Exception:  # noqa: BLE001 - the sync thread must never die
                logger.exception("breaker sync failed")
                self._stop.wait(self._sync_interval)
        if pubsub is not None:
            _quietly(pubsub.close)

    def _restart_after_fork(self) -> None:
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._wake_socket = None  # the parent's: shutting it down would end the parent's subscription
        reset_after_fork(self._client)
        self._start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            _wake(self._wake_socket)
            self._thread.join(timeout=2)
        _STORES.discard(self)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _wake(sock: Any) -> None:
    """End the sync thread's wait for a notice at once (it waits up to 0.25 s otherwise): shutting
    the subscription's socket down makes the pending read return, from any thread. A socket closed
    since has no descriptor: the shutdown fails quietly."""
    if sock is not None:
        _quietly(lambda: sock.shutdown(socket.SHUT_RDWR))


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


_STORES: weakref.WeakSet[RedisBreakerStore] = weakref.WeakSet()


def _after_fork() -> None:
    for store in list(_STORES):
        if not store._stop.is_set():
            store._restart_after_fork()


os.register_at_fork(after_in_child=_after_fork)
