"""Turns events into notices, off the request path: match on the caller's thread, decide and send on
a daemon thread (or in the Celery task ``resilience.tasks.send_alert`` when ``ALERTS["celery"]``).

The ``event_emitted`` receiver only matches the rules (no I/O) and puts the event on a bounded
queue (``ALERTS["queue_size"]``); a full queue drops it and emits ``alerts notice_dropped``
(``total``: drops since start). The thread asks the incident store (``incidents``) whether the match
opens or resolves an incident, builds the notice (``notice``) and sends it to every notifier;
``alerts notice_sent`` or ``alerts send_failed`` (``notifier``, ``error``: the exception's type)
says how that went. Events of the ``alerts`` area are never matched, so alerts cannot feed themselves.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from resilience.conf import on_reload, resilience_settings
from resilience.core.event import Event
from resilience.exceptions import ConfigurationError
from resilience.observability.alerts import notice as notices
from resilience.observability.alerts.incidents import Incidents, LocalIncidents, RedisIncidents
from resilience.observability.alerts.notifiers import Notifier, build
from resilience.observability.alerts.rules import Rule
from resilience.observability.alerts.settings import AlertsSettings
from resilience.observability.events import emit
from resilience.signals import event_emitted

_internal = logging.getLogger("resilience.events")
Item = tuple[Event, list[tuple[str, Rule]], float]


def send_now(notice: dict[str, Any], notifiers: list[Notifier]) -> int:
    """Send ``notice`` to every notifier; each failure is an event. Returns how many took it."""
    sent = 0
    for notifier in notifiers:
        tags = {"notifier": notifier.kind, "status": notice["status"]}
        try:
            notifier.send(notice)
        except Exception as exc:  # noqa: BLE001 - a notifier must never break the sender
            emit(Event("alerts", "send_failed", notice["rule"], {**tags, "error": type(exc).__name__}))
            continue
        sent += 1
        emit(Event("alerts", "notice_sent", notice["rule"], tags))
    return sent


class Dispatcher:
    """The rules, notifiers, queue and thread of one version of the settings."""

    def __init__(self, settings: AlertsSettings, shared: Incidents | None, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        self.shared, self.local = shared, LocalIncidents(clock)
        self.notifiers = [build(config) for config in settings.notifiers]
        # (area, kind) -> the rules that may raise or resolve on it: an event no rule names costs one lookup
        self.by_kind: dict[tuple[str, str], list[Rule]] = {}
        for rule in settings.rules:
            for match in (rule.match, rule.resolve):
                if match is not None and rule not in self.by_kind.setdefault((match.area, match.kind), []):
                    self.by_kind[(match.area, match.kind)].append(rule)
        self.queue: queue.Queue[Item | None] = queue.Queue(maxsize=settings.queue_size)
        self.dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopped = False

    # -- the caller's thread: no I/O ------------------------------------------------------------
    def submit(self, event: Event) -> None:
        rules = self.by_kind.get((event.area, event.kind))
        if rules is None:
            return
        actions = [("resolve", rule) for rule in rules if rule.resolves(event)]
        actions += [("raise", rule) for rule in rules if rule.raises(event)]
        if not actions:
            return
        self._ensure_thread()
        try:
            self.queue.put_nowait((event, actions, self.clock()))
        except queue.Full:
            with self._lock:
                self.dropped += 1
                total = self.dropped
            emit(Event("alerts", "notice_dropped", "queue", {"total": total, "queue": self.settings.queue_size}))

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:  # first use, or the first use after a fork (the parent's thread is not here)
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._drain, name="resilience-alerts", daemon=True)
                self._thread.start()

    # -- the sending thread -----------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None or self._stopped:
                    return
                self.handle(item)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one notice
                _internal.error("alerts: a notice failed: %s", type(exc).__name__)
            finally:
                self.queue.task_done()

    def _decide(self, method: str, *args: Any) -> Any:
        """Ask the shared store; when Redis fails, this process's store decides (more notices, never none)."""
        if self.shared is not None:
            try:
                return getattr(self.shared, method)(*args)
            except Exception as exc:  # noqa: BLE001 - redis.RedisError and its relatives
                emit(Event("alerts", "store_unavailable", "incidents", {"fallback": "local", "error": type(exc).__name__}))
        return getattr(self.local, method)(*args)

    def handle(self, item: Item) -> None:
        event, actions, at = item
        for action, rule in actions:
            if action == "resolve":
                incident = self._decide("resolve", rule, event.name)
                if incident is not None:
                    self.deliver(notices.build(rule.id, "resolved", incident, event, 1, at))
                continue
            count = self._decide("count", rule, event.name, at)
            if count < rule.threshold:
                continue
            decision = self._decide("open", rule, event.name, uuid.uuid4().hex[:16])
            if decision is not None:
                self.deliver(notices.build(rule.id, decision[0], decision[1], event, count, at))

    def deliver(self, notice: dict[str, Any]) -> None:
        if self.settings.celery:
            try:
                from resilience.tasks import send_alert

                send_alert.apply_async(args=[notice], ignore_result=True)
                return
            except Exception as exc:  # noqa: BLE001 - no broker: send from here rather than lose it
                emit(Event("alerts", "send_failed", notice["rule"], {"notifier": "celery", "error": type(exc).__name__}))
        send_now(notice, self.notifiers)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is handled (tests, management commands); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        self._stopped = True
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass  # the thread stops at its next item


_current: list[Dispatcher | None] = []  # [] not built yet; [None]: no alerts in these settings
_build_lock = threading.Lock()


def dispatcher() -> Dispatcher | None:
    """The dispatcher of the current settings, or None without rules and notifiers (or with malformed
    ALERTS, which ``resilience.E001`` reports at start-up)."""
    if _current:
        return _current[0]
    with _build_lock:
        if not _current:
            _current.append(_build())
    return _current[0]


def _build() -> Dispatcher | None:
    try:
        settings: AlertsSettings = resilience_settings.ALERTS
    except ConfigurationError as exc:
        _internal.error("alerts are off: %s", exc)
        return None
    if not settings.enabled:
        return None
    shared: Incidents | None = None
    if resilience_settings.REDIS is not None:
        from resilience.storage.redis.client import shared_client

        try:
            shared = RedisIncidents(shared_client(), resilience_settings.KEY_PREFIX)
        except ConfigurationError as exc:  # REDIS names a missing cache: E002/E003 say so at start-up
            _internal.error("alerts: incidents are deduplicated per process: %s", exc)
    return Dispatcher(settings, shared)


def _reset() -> None:
    with _build_lock:
        old = _current[0] if _current else None
        _current.clear()
    if old is not None:
        old.stop()


on_reload(_reset)


def receive(sender: Any, event: Event, **kwargs: Any) -> None:
    """``event_emitted`` receiver: queue the events that match a rule."""
    if event.area == "alerts":
        return
    current = _current[0] if _current else dispatcher()
    if current is not None:
        current.submit(event)


def connect() -> None:
    event_emitted.connect(receive, dispatch_uid="resilience.alerts")
