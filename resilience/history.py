"""Writes breaker transitions and manual actions to ``CircuitEvent`` off the request path."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from django.db import close_old_connections, connections

from .conf import resilience_settings
from .core.event import Event
from .signals import event_emitted

logger = logging.getLogger("resilience.history")
_QUEUE: queue.Queue[Event | None] = queue.Queue(maxsize=10_000)
_thread: threading.Thread | None = None
_lock = threading.Lock()
dropped = 0


def _writer() -> None:
    from .models import CircuitEvent

    while True:
        event = _QUEUE.get()
        try:
            if event is None:
                return
            close_old_connections()
            f = event.fields
            CircuitEvent.objects.create(
                breaker=event.name[:200],
                old_state=f.get("old_state", ""),
                new_state=f.get("new_state", ""),
                reason=str(f.get("reason", ""))[:100],
                actor=(str(f["actor"])[:150] if f.get("actor") is not None else ""),
                failure_rate=f.get("failure_rate"),
                calls=f.get("calls"),
            )
        except Exception as exc:  # noqa: BLE001 - history must never break anything
            logger.warning("could not record circuit event: %s", type(exc).__name__)
        finally:
            connections.close_all()
            _QUEUE.task_done()


def record(sender: Any, event: Event, **kwargs: Any) -> None:
    """Signal receiver: queue breaker transitions for the writer thread (drops when full)."""
    global _thread, dropped
    if event.area != "breaker" or event.kind != "transition" or not resilience_settings.HISTORY:
        return
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_writer, name="resilience-history", daemon=True)
            _thread.start()
    try:
        _QUEUE.put_nowait(event)
    except queue.Full:
        dropped += 1


def flush() -> None:
    """Block until every queued event is written (tests, management commands)."""
    _QUEUE.join()


def connect() -> None:
    event_emitted.connect(record, dispatch_uid="resilience.history")
