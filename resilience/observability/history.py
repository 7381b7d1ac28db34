"""Writes breaker transitions and manual actions to ``CircuitEvent`` off the request path.

The queue is bounded; when it is full a record is dropped, and drops are reported through the one
event path as ``history dropped`` (metric ``resilience.history.dropped``): the first at once, then
at most one summary per ``REPORT_EVERY`` seconds with the count since the last report, so an outage
costs a bounded number of log lines.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections

from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.observability.events import emit
from resilience.signals import event_emitted

QUEUE_SIZE = 10_000
BATCH = 500  # rows per INSERT; one connection per batch (one per row made the writer the bottleneck)
REPORT_EVERY = 60.0  # seconds between two reports of dropped records
_QUEUE: queue.Queue[Event | None] = queue.Queue(maxsize=QUEUE_SIZE)
_thread: threading.Thread | None = None
_lock = threading.Lock()


class DropReport:
    """Counts records dropped from a full queue and reports them as ``Event("history", "dropped",
    "CircuitEvent", {"count": n, "total": t})``: the first drop at once, later ones summed into at
    most one report per ``every`` seconds (``report()`` sends what is due; ``force`` sends it now)."""

    def __init__(
        self, every: float = REPORT_EVERY, clock: Callable[[], float] = time.monotonic, sink: Callable[[Event], None] = emit
    ) -> None:
        self._every = every
        self._clock = clock
        self._emit = sink
        self._lock = threading.Lock()
        self._reported_at: float | None = None
        self.pending = 0  # dropped since the last report
        self.total = 0  # dropped since the process started

    def dropped(self) -> None:
        with self._lock:
            self.pending += 1
            self.total += 1
            event = self._due(False)
        if event is not None:
            self._emit(event)  # outside the lock: a receiver may record again

    def report(self, force: bool = False) -> None:
        with self._lock:
            event = self._due(force)
        if event is not None:
            self._emit(event)

    def _due(self, force: bool) -> Event | None:
        now = self._clock()
        if not self.pending or not force and self._reported_at is not None and now - self._reported_at < self._every:
            return None
        event = Event("history", "dropped", "CircuitEvent", {"count": self.pending, "total": self.total, "queue": QUEUE_SIZE})
        self.pending, self._reported_at = 0, now
        return event


drops = DropReport()


def _row(event: Event) -> Any:
    from resilience.models import CircuitEvent

    f = event.fields
    return CircuitEvent(
        breaker=event.name[:200],
        old_state=f.get("old_state", ""),
        new_state=f.get("new_state", ""),
        reason=str(f.get("reason", ""))[:100],
        actor=(str(f["actor"])[:150] if f.get("actor") is not None else ""),
        failure_rate=f.get("failure_rate"),
        slow_rate=f.get("slow_rate"),
        calls=f.get("calls"),
    )


def _writer() -> None:
    from resilience.integrations.postgres.guards import unguarded
    from resilience.models import CircuitEvent

    while True:
        try:  # while drops wait for their summary, wake up to send it even if nothing more comes
            batch = [_QUEUE.get(timeout=REPORT_EVERY if drops.pending else None)]
        except queue.Empty:
            drops.report()
            continue
        while len(batch) < BATCH and batch[-1] is not None:
            try:
                batch.append(_QUEUE.get_nowait())
            except queue.Empty:
                break
        events = [event for event in batch if event is not None]
        try:
            if events:
                close_old_connections()
                with unguarded():  # a forced-open postgres:<alias> must not refuse the row that records it
                    CircuitEvent.objects.bulk_create([_row(event) for event in events])
        except Exception as exc:  # noqa: BLE001 - history must never break anything
            emit(Event("history", "write_failed", "CircuitEvent", {"count": len(events), "error": type(exc).__name__}))
        finally:
            connections.close_all()
            for _ in batch:
                _QUEUE.task_done()
        drops.report()
        if batch[-1] is None:
            return


def record(sender: Any, event: Event, **kwargs: Any) -> None:
    """Signal receiver: queue breaker transitions for the writer thread (counted and reported when full)."""
    global _thread
    if event.area != "breaker" or event.kind != "transition" or not resilience_settings.HISTORY:
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_writer, name="resilience-history", daemon=True)
            _thread.start()
    try:
        _QUEUE.put_nowait(event)
    except queue.Full:
        drops.dropped()


def flush() -> None:
    """Block until every queued event is written, and report drops not yet reported (tests, management commands)."""
    _QUEUE.join()
    drops.report(force=True)


def connect() -> None:
    event_emitted.connect(record, dispatch_uid="resilience.history")
