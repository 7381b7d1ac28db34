"""In-process breaker state: the embedded default, and the Redis store's local fallback."""

from __future__ import annotations

import threading

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Decision, Outcome, StateRecord, StateView
from resilience.core.clock import SYSTEM_CLOCK, Clock
from resilience.core.ports import BreakerStore, Change


class MemoryBreakerStore(BreakerStore):
    """State machine records in a dict, guarded by one lock; shared by the threads of one process."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._records: dict[str, StateRecord] = {}
        self._views: dict[str, StateView] = {}
        self._lock = threading.Lock()

    def _record(self, name: str) -> StateRecord:
        record = self._records.get(name)
        if record is None:
            record = self._records[name] = StateRecord.fresh(self.now())
            self._views[name] = record.view
        return record

    def _publish(self, name: str, record: StateRecord) -> StateView:
        self._views[name] = record.view
        return record.view

    def view(self, name: str) -> StateView:
        view = self._views.get(name)
        return view if view is not None else _CLOSED

    def now(self) -> float:
        return self._clock.wall()

    def seed(self, name: str, view: StateView) -> None:
        """Adopt a view learnt elsewhere (the Redis store's last known state)."""
        with self._lock:
            record = self._record(name)
            if view.gen != record.view.gen or view.state != record.view.state:
                record.view, record.half_open_ok = view, 0
                record.permits.clear()
                self._publish(name, record)

    def acquire(self, name: str, config: BreakerConfig, permit_id: str, permit_ttl: float) -> Decision:
        with self._lock:
            record = self._record(name)
            decision = record.acquire(self.now(), config, permit_id, permit_ttl)
            self._publish(name, record)
            return decision

    def trip(self, name: str, config: BreakerConfig, expected_gen: int) -> Change:
        with self._lock:
            record = self._record(name)
            return record.trip(self.now(), config, expected_gen), self._publish(name, record)

    def release(self, name: str, config: BreakerConfig, gen: int, permit_id: str, outcome: Outcome) -> Change:
        with self._lock:
            record = self._record(name)
            return record.release(self.now(), config, gen, permit_id, outcome), self._publish(name, record)

    def manual(self, name: str, op: str) -> Change:
        with self._lock:
            record = self._record(name)
            return record.manual(self.now(), op), self._publish(name, record)

    def register(self, name: str) -> None:
        with self._lock:
            self._record(name)

    def names(self) -> set[str]:
        return set(self._records)


_CLOSED = StateView()
