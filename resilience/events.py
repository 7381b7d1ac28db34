"""The one path every event takes: the ``event_emitted`` signal, one structured log line, metrics."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.utils.module_loading import import_string

from .conf import on_reload, resilience_settings
from .core.event import Event
from .metrics import MetricsSink
from .signals import event_emitted

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
    "not_storable": logging.WARNING,  # a fallback's value cannot be kept stale
    "stale_full": logging.WARNING,  # a fallback reached its max_stale_keys
    "host_overflow": logging.WARNING,  # ResilientSession reached max_host_breakers
    "stream_deadline_exceeded": logging.WARNING,
}
_TAGGED_FIELDS = ("new_state", "state")
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
    global _sinks
    if _sinks is None:
        _sinks = [import_string(path)() for path in resilience_settings.METRICS.get("SINKS", [])]
    return _sinks


def _reset() -> None:
    global _sinks
    _sinks = None


on_reload(_reset)


def emit(event: Event) -> None:
    """Dispatch ``event`` to signal receivers, the ``resilience.<area>`` logger and metrics sinks.

    Never raises: a broken receiver or sink is logged, not propagated into the protected call.
    """
    for receiver, result in event_emitted.send_robust(sender="resilience", event=event):
        if isinstance(result, Exception):
            _internal.error("event receiver %r failed: %s", receiver, type(result).__name__)
    logger = _loggers.get(event.area) or _loggers.setdefault(event.area, logging.getLogger(f"resilience.{event.area}"))
    level = _LEVELS.get(event.kind, logging.INFO)
    if logger.isEnabledFor(level):
        structured = {"area": event.area, "kind": event.kind, "name": event.name, **event.fields}
        logger.log(level, format_line(event), extra={"resilience": structured})
    tags = {"name": event.name[:200], **{k: str(event.fields[k]) for k in _TAGGED_FIELDS if k in event.fields}}
    count = event.fields.get("count", 1)  # a summary of n occurrences (``count=n``) adds n
    value = float(count) if isinstance(count, (int, float)) and not isinstance(count, bool) else 1.0
    for sink in sinks():
        try:
            sink.increment(f"resilience.{event.area}.{event.kind}", value, tags)
        except Exception as exc:  # noqa: BLE001
            _internal.error("metrics sink %r failed: %s", sink, type(exc).__name__)
