"""Name → breaker, built from settings; ``breakers`` is the process-wide registry."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.apps import apps

from resilience.conf import exception_classes, on_reload, resilience_settings
from resilience.core.breaker import CircuitBreaker
from resilience.core.breaker_config import BreakerConfig, validate_name
from resilience.core.breaker_state import State
from resilience.core.event import Event
from resilience.core.ports import BreakerStore
from resilience.core.windows import WindowSnapshot
from resilience.exceptions import ConfigurationError, StoreUnavailableError, UnknownBreakerError
from resilience.observability.events import emit, sinks
from resilience.storage import breaker_store


@dataclass(frozen=True)
class BreakerSnapshot:
    """What dashboards show of one breaker at one moment."""

    name: str
    state: str
    failure_rate: float
    slow_rate: float
    calls: int
    since: float | None  # store-clock timestamp of the last transition
    next_probe: float | None  # seconds until a probe may run (open), else None
    trips: int
    config: BreakerConfig
    probe_due: bool = False  # open and its open period is over: the next call probes (nothing runs yet)


class BreakerRegistry:
    """Creates breakers on first use with their configured settings; one store for all of them.

    Code that names a breaker before using it (``degradable(breaker=...)``, the ``{% degradable %}``
    tag, ``DegradableViewMixin.degrade_when``, ``circuit_breaker(...)``) *declares* it: the name goes
    to the shared store at once, so every process can list and force it before its first call."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._declared: dict[str, None] = {}  # declared in this process (an ordered set)
        self._announced: set[str] = set()  # declared names the current store has been told of
        self._store: BreakerStore | None = None
        self._lock = threading.RLock()
        self.version = 0  # bumped on reload, so cached handles re-resolve their breaker
        on_reload(self.reload)

    # -- store ----------------------------------------------------------------------------
    @property
    def store(self) -> BreakerStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._build_store()
        return self._store

    def _build_store(self) -> BreakerStore:
        return breaker_store(stats_source=self._local_stats)

    def local(self) -> list[CircuitBreaker]:
        """This process's breaker objects (made on first use since the last settings change)."""
        return list(self._breakers.values())

    def _local_stats(self) -> dict[str, WindowSnapshot]:
        return {name: b.local_stats() for name, b in list(self._breakers.items())}

    def reload(self) -> None:
        """Forget breakers and store; the next use rebuilds them from the current settings."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self._breakers = {}
            # A settings change (in practice: a test) starts from scratch, declarations included.
            self._declared, self._announced = {}, set()
            self.version += 1

    # -- breakers -------------------------------------------------------------------------
    def declare(self, name: str) -> str:
        """Make ``name`` listable and forcible from every process without using it; returns it.

        Cheap when repeated. Once Django is set up the name reaches the store now (with Redis one
        round trip, once per name and process); before that, at this registry's next listing or
        first breaker."""
        validate_name(name)
        if name not in self._declared:
            self._declared[name] = None
            if apps.ready:
                try:
                    self._announce()
                except ConfigurationError:  # RESILIENCE is malformed: resilience.E001 says so; the
                    pass  # name stays pending and is announced at the next listing or new breaker
        return name

    def declared(self) -> set[str]:
        """The names code in this process declared (decorators, ``degradable``, templates)."""
        return set(self._declared)

    def _announce(self) -> None:
        pending = self._declared.keys() - self._announced
        if not pending:
            return
        store = self.store
        for name in sorted(pending):
            store.register(name)
        if store.healthy:  # else the next listing or new breaker tries again
            self._announced |= pending

    def get_or_create(self, name: str, **overrides: Any) -> CircuitBreaker:
        """The breaker ``name``, created with settings (plus ``overrides``) on first use."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        validate_name(name)
        where = f"circuit_breaker({name!r})"
        if isinstance(overrides.get("ignore"), (list, tuple)):  # dotted paths, as in BREAKERS
            overrides["ignore"] = exception_classes(overrides["ignore"], f'{where}["ignore"]')
        config = resilience_settings.breaker_config(name).with_overrides(where, **overrides)
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = self._breakers[name] = CircuitBreaker(name, config, self.store, emit=emit)
        self._announce()
        sinks()  # built now, not at the first event: a sink that exports call totals must run without one
        return breaker

    def names(self) -> list[str]:
        """Configured, declared or used in this process, or known to the shared store; sorted."""
        self._announce()
        names = set(resilience_settings.configured_breakers()) | set(self._breakers) | set(self._declared)
        for name in self.store.names() - names:
            try:
                names.add(validate_name(name))
            except ConfigurationError:  # written by someone else: never let it break a listing
                emit(Event("breaker", "invalid_shared_name", "store", {"value": repr(name)[:80]}))
        return sorted(names)

    def get(self, name: str) -> CircuitBreaker:
        """A known breaker; ``UnknownBreakerError`` for any other name (never creates one by typo)."""
        breaker = self._breakers.get(name) if isinstance(name, str) else None
        if breaker is not None:
            return breaker
        if not isinstance(name, str) or name not in self.names():
            if not self.store.healthy:
                raise StoreUnavailableError("the shared breaker store is unreachable; unknown breakers cannot be looked up")
            raise UnknownBreakerError(name if isinstance(name, str) else repr(name))
        return self.get_or_create(name)

    def snapshot(self, name: str) -> BreakerSnapshot:
        breaker = self.get(name)
        view = breaker.view()
        stats = breaker.stats()
        # The shared state as it is: an open breaker whose open period is over stays open (its next
        # call probes); ``breaker.state`` calls that "half_open", but no probe has been admitted yet.
        next_probe = max(view.open_until - self.store.now(), 0.0) if view.state is State.OPEN else None
        return BreakerSnapshot(
            name, view.state.value, round(stats.failure_rate, 2), round(stats.slow_rate, 2), stats.calls,
            view.since or None, next_probe, view.trips, breaker.config, probe_due=next_probe == 0.0,
        )  # fmt: skip

    def all(self) -> list[BreakerSnapshot]:
        """A snapshot of every configured or used breaker, fresh from the shared store."""
        names = self.names()
        for name in names:
            self.get_or_create(name)
        try:
            self.store.refresh()
        except Exception as exc:  # noqa: BLE001 - a dashboard shows last known state when Redis is down
            emit(Event("breaker", "refresh_failed", "store", {"error": type(exc).__name__}))
        return [self.snapshot(name) for name in names]

    def reset_all(self, actor: str | None = None) -> list[str]:
        names = self.names()
        for name in names:
            self.get(name).reset(actor=actor)
        return names


breakers = BreakerRegistry()
