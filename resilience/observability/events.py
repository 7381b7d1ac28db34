"""The one path every event takes: the ``event_emitted`` signal, a structured log line, metrics.

Every event reaches the signal and the metrics sinks. Log lines are bounded: a change of state is a
line each; a kind that can happen once per request is a line the first time, then one summary per
``SUMMARY_EVERY`` seconds with ``count=N`` (see ``LogSummary``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from resilience.conf import on_reload, resilience_settings
from resilience.core.event import Event
from resilience.exceptions import ConfigurationError
from resilience.observability.metrics import EVENT_TAGS, MetricsSink
from resilience.signals import event_emitted

__all__ = ["Event", "emit"]

_LEVELS = {
    "transition": logging.WARNING,
    "rejected": logging.INFO,
    "give_up": logging.WARNING,
    "budget_refused": logging.WARNING,
    "store_unavailable": logging.WARNING,
    "provider_unavailable": logging.WARNING,
    "unavailable": logging.WARNING,
    "dropped": logging.WARNING,  # history records lost from a full queue
    "write_failed": logging.WARNING,  # history records the database did not take
    "share_failed": logging.WARNING,  # Entra keys not shared through Redis (each worker fetches its own)
    "refresh_failed": logging.WARNING,  # a listing shows the last known breaker state
    "invalid_shared_name": logging.WARNING,  # a name in the shared store that is not a breaker name
    "credentials_refresh_failed": logging.WARNING,  # STS did not answer: the current AWS credentials go on
    "credentials_unreadable": logging.WARNING,  # a shared copy that does not decrypt (rotated key, planted value)
    "credentials_expiring": logging.WARNING,  # a worker serves credentials Celery has not refreshed
    "failover": logging.WARNING,  # an AWS call served by another region
    "last_known_good": logging.WARNING,  # every region failed: a configured last-known-good value served
    "not_storable": logging.WARNING,  # a fallback's value cannot be kept stale
    "stale_full": logging.WARNING,  # a fallback reached its max_stale_keys
    "host_overflow": logging.WARNING,  # ResilientSession reached max_host_breakers
    "stream_deadline_exceeded": logging.WARNING,
    "series_overflow": logging.WARNING,  # a metrics sink at its max_series: later series not shipped
    "series_refused": logging.WARNING,  # series a metrics sink cannot ship (too many dimensions, bad names)
    "batch_dropped": logging.WARNING,  # a CloudWatchSink batch not sent: full queue, open breaker, closing
    "notice_dropped": logging.WARNING,  # an alert notice lost from a full queue (observability.alerts)
    "send_failed": logging.WARNING,  # a notifier did not take an alert notice
}
# Kinds that mark a change of state (or are already reported once or periodically): a log line each.
# Every other kind can happen once per request (a rejection, a retry, a 429, a fallback used), so
# its log line is summarised: the first at once, then one line per SUMMARY_EVERY with ``count=N``,
# per (area, kind, name). Signals and metrics still see every event.
STATE_CHANGES = frozenset({
    "transition", "manual", "keys_loaded", "provider_unavailable", "dropped", "host_overflow", "stale_full",
    "not_storable",
    # a level each, bounded by their own pacing (a refresh run, RETRY_INTERVAL, EXPIRING_EVERY): a
    # summary would print an old expires_in up to a minute late (the second fresh-project trial)
    "credentials_refreshed", "credentials_fresh", "credentials_expiring", "credentials_refresh_failed",
})  # fmt: skip
# Kinds summarised apart by one field whose values form a closed set (an exception class, a state, a
# notifier type), so a new value is a line at once and a summary's fields hold for all it counts.
SPLIT_BY = {"failover": "reason", "give_up": "reason", "batch_dropped": "reason", "rejected": "state", "notice_sent": "notifier"}
# A breaker probing a dependency that stays down goes open -> half_open -> open once per open_for:
# those two transitions recur for as long as the outage lasts, so they are summarised like per-request
# kinds (the trip itself, a recovery and every manual action are always a line each).
RECURRING = frozenset({"open_for elapsed", "probe failure"})
SUMMARY_EVERY = 60.0  # seconds between two log lines of one (area, kind, name)
MAX_SUMMARIES = 1024  # distinct (area, kind, name) tracked; past it, lines are summarised per (area, kind)
_TAGGED_FIELDS = tuple(tag for tag in EVENT_TAGS if tag != "name")
_PLAIN = re.compile(r"[A-Za-z0-9_.:@-]+")
_sinks: list[MetricsSink] | None = None
_loggers: dict[str, logging.Logger] = {}
_internal = logging.getLogger("resilience.events")


def _value(value: Any) -> str:
    """Numbers as JSON; short plain words bare; anything else quoted and escaped, at most 200 characters."""
    if isinstance(value, (int, float, bool)) or value is None:
        return json.dumps(value)
    text = str(value)[:200]
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def format_line(event: Event) -> str:
    """``breaker transition name=payments old_state=closed ...``: greppable, one line, escaped."""
    parts = [event.area, event.kind, f"name={_value(event.name)}"]
    parts += [f"{key}={_value(val)}" for key, val in event.fields.items()]
    return " ".join(parts)


def sinks() -> list[MetricsSink]:
    """The metrics sinks, built once per settings: a sink that is misconfigured or fails to build is
    logged and left out (``resilience.E001`` reports the setting at start-up), never raised into a call."""
    global _sinks
    if _sinks is None:
        built: list[MetricsSink] = []
        try:
            classes = resilience_settings.METRICS.sinks
        except ConfigurationError as exc:
            _internal.error("no metrics sinks: %s", exc)
            classes = ()
        for cls in classes:
            try:
                built.append(cls())
            except Exception as exc:  # noqa: BLE001 - metrics must never break a request
                _internal.error("metrics sink %r could not be built: %s", cls, type(exc).__name__)
        _sinks = built
    return _sinks


def _reset() -> None:
    """Settings changed: the next event builds the sinks again; the old ones ship what they hold and stop."""
    global _sinks
    old, _sinks = _sinks or [], None
    for sink in old:
        try:
            sink.close()
        except Exception as exc:  # noqa: BLE001 - a settings change must not fail on a metrics sink
            _internal.error("metrics sink %r failed to close: %s", sink, type(exc).__name__)


on_reload(_reset)


class LogSummary:
    """Decides which events get a log line, so that an outage costs a bounded number of lines."""

    def __init__(self, every: float = SUMMARY_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str], list[Any]] = {}  # key -> [logged_at, folded count, last event]
        self._next_sweep = 0.0

    def admit(self, event: Event) -> list[Event]:
        """The lines to log now for ``event``: itself, a summary with ``count``, or nothing (folded)."""
        if event.kind in STATE_CHANGES and event.fields.get("reason") not in RECURRING:
            return [event]
        now = self.clock()
        split = "reason" if event.kind in STATE_CHANGES else SPLIT_BY.get(event.kind)
        kind = f"{event.kind}:{event.fields.get(split)}" if split is not None else event.kind
        key = (event.area, kind, event.name)
        with self._lock:
            due = self._sweep(now) if now >= self._next_sweep else []
            if key not in self._windows and len(self._windows) >= MAX_SUMMARIES:
                key = (event.area, event.kind, "*")
            window = self._windows.get(key)
            if window is None:
                self._windows[key] = [now, 0, event]
                return [*due, event]
            window[1] += 1
            window[2] = event
        _start_sweeper()  # something is folded: its summary must come out on time, even if nothing follows
        return due

    def sweep(self) -> list[Event]:
        """The summaries due now (the sweeper thread's call: on time even when no event follows)."""
        with self._lock:
            return self._sweep(self.clock())

    def _sweep(self, now: float) -> list[Event]:
        """Summaries whose interval has passed (windows with nothing folded are forgotten)."""
        self._next_sweep = now + min(self.every, 1.0)
        lines = []
        for key, (logged_at, folded, last) in list(self._windows.items()):
            if now - logged_at < self.every:
                continue
            if folded:
                lines.append(_with_count(last, folded))
                self._windows[key] = [now, 0, last]
            else:
                del self._windows[key]
        return lines

    def flush(self) -> list[Event]:
        """Every pending summary now (at exit, and for tests)."""
        with self._lock:
            lines = [_with_count(last, folded) for _, folded, last in self._windows.values() if folded]
            self._windows.clear()
        return lines


def _with_count(last: Event, folded: int) -> Event:
    """The summary line: the latest event folded, with ``count`` = events folded since the last line."""
    return Event(last.area, last.kind, last.name, {**last.fields, "count": folded})


summary = LogSummary()


def _log(line: Event) -> None:
    logger = _loggers.get(line.area) or _loggers.setdefault(line.area, logging.getLogger(f"resilience.{line.area}"))
    level = _LEVELS.get(line.kind, logging.INFO)
    if logger.isEnabledFor(level):
        structured = {"area": line.area, "kind": line.kind, "name": line.name, **line.fields}
        logger.log(level, format_line(line), extra={"resilience": structured})


_sweeper_pid = [0]  # the process whose sweeper thread runs (a forked child starts its own)


def _start_sweeper() -> None:
    if _sweeper_pid[0] == os.getpid():
        return
    with _sweeper_lock:
        if _sweeper_pid[0] != os.getpid():
            _sweeper_pid[0] = os.getpid()
            threading.Thread(target=_sweep_forever, daemon=True, name="resilience-log-summaries").start()


def _sweep_forever() -> None:
    """Log summaries as they fall due, about once a second: a summary never waits for the next event."""
    while True:
        time.sleep(min(summary.every, 1.0))
        try:
            for line in summary.sweep():
                _log(line)
        except Exception as exc:  # noqa: BLE001 - the thread must outlive a broken handler
            _internal.error("log summaries failed: %s", type(exc).__name__)


_sweeper_lock = threading.Lock()


def flush_summaries() -> None:
    """Log every summary still pending (registered with ``atexit``)."""
    for line in summary.flush():
        _log(line)


atexit.register(flush_summaries)


def emit(event: Event) -> None:
    """Dispatch ``event`` to signal receivers, the ``resilience.<area>`` logger and metrics sinks.

    Never raises: a broken receiver or sink is logged, not propagated into the protected call.
    """
    for receiver, result in event_emitted.send_robust(sender="resilience", event=event):
        if isinstance(result, Exception):
            _internal.error("event receiver %r failed: %s", receiver, type(result).__name__)
    for line in summary.admit(event):
        _log(line)
    tags = {"name": event.name[:200], **{k: str(event.fields[k]) for k in _TAGGED_FIELDS if k in event.fields}}
    count = event.fields.get("count", 1)  # a summary of n occurrences (``count=n``) adds n
    value = float(count) if isinstance(count, (int, float)) and not isinstance(count, bool) else 1.0
    for sink in sinks():
        try:
            sink.increment(f"resilience.{event.area}.{event.kind}", value, tags)
        except Exception as exc:  # noqa: BLE001
            _internal.error("metrics sink %r failed: %s", sink, type(exc).__name__)
