"""Metrics sinks: where event counts go. Pluggable by dotted path in ``RESILIENCE["METRICS"]["SINKS"]``."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.core.event import Event
from resilience.core.validation import import_path, is_number, reject_unknown_keys
from resilience.exceptions import ConfigurationError
from resilience.signals import event_emitted

# Events that report a level as well as an occurrence: (area, kind) -> (gauge, the field it takes).
# Every event is still counted (``resilience.<area>.<kind>``); these also set the gauge, per name.
GAUGES: dict[tuple[str, str], tuple[str, str]] = {
    ("aws", kind): ("resilience.aws.credentials_expires_in", "expires_in")  # seconds left: alert when low
    for kind in ("credentials_refreshed", "credentials_refresh_failed", "credentials_fresh", "credentials_expiring")
}
# The tags events put on metrics: ``name`` always, and ``new_state``/``state`` when the event has that
# field (``events.emit``). No request input becomes a tag: names come from code and settings (HTTP host
# breakers from the hosts your code calls, at most HTTP_MAX_HOST_BREAKERS), states from an enum.
EVENT_TAGS = ("name", "new_state", "state")
# Settings of individual sinks, by their key in ``RESILIENCE["METRICS"]``: the dotted path of each
# key's parser ``(value or None, path) -> options``. Every key is parsed, whether or not its sink is
# in SINKS, so a typo is a system-check error at start-up.
SINK_SETTINGS: dict[str, str] = {
    "EMF": "resilience.observability.emf_settings.parse_emf",
    "PROMETHEUS": "resilience.observability.prometheus_settings.parse_prometheus",
    "CLOUDWATCH": "resilience.observability.cloudwatch_settings.parse_cloudwatch",
}


class MetricsSink:
    """Base contract: count things with tags. Subclasses ship them somewhere (CloudWatch, Prometheus)."""

    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    def gauge(self, metric: str, value: float, tags: dict[str, str] | None = None) -> None:
        """Set a level (the last value wins; ``GAUGES``). Default: nothing, so a sink that only counts still works."""

    def close(self) -> None:
        """Ship what is pending and stop (the settings changed, or the process exits); bounded, never
        raises. Default: nothing, for sinks that keep no state of their own."""


class InMemorySink(MetricsSink):
    """Keeps counters in process memory; for tests and the admin. ``InMemorySink.last`` is the latest instance."""

    last: InMemorySink | None = None

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        InMemorySink.last = self

    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        key = (metric, tuple(sorted((tags or {}).items())))
        with self._lock:
            self.counters[key] += value

    def gauge(self, metric: str, value: float, tags: dict[str, str] | None = None) -> None:
        with self._lock:
            self.gauges[(metric, tuple(sorted((tags or {}).items())))] = value

    def level(self, metric: str, **tags: str) -> float | None:
        """The last value of gauge ``metric`` in the series whose tags include ``tags`` (None: never set)."""
        with self._lock:
            found = [v for (m, t), v in self.gauges.items() if m == metric and set(tags.items()) <= set(t)]
        return found[-1] if found else None

    def value(self, metric: str, **tags: str) -> float:
        """Sum of ``metric`` over every series whose tags include ``tags``."""
        with self._lock:
            return sum(v for (m, t), v in self.counters.items() if m == metric and set(tags.items()) <= set(t))


@dataclass(frozen=True)
class MetricsSettings:
    """``RESILIENCE["METRICS"]`` parsed: the sink classes, and each sink's own settings by key (``"EMF"``)."""

    sinks: tuple[type[MetricsSink], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_metrics(value: Any, path: str) -> MetricsSettings:
    """``RESILIENCE["METRICS"]`` (its ``PARSERS`` entry): each ``SINKS`` path must import and name a
    ``MetricsSink`` subclass, and each key of ``SINK_SETTINGS`` must parse, so a typo is a system-check
    error at start-up, not a lost metric."""
    if not isinstance(value, dict) or not isinstance(value.get("SINKS", []), (list, tuple)):
        shown = type(value.get("SINKS")).__name__ if isinstance(value, dict) else type(value).__name__
        raise ConfigurationError(f'{path} must be a dict with a list "SINKS", got {shown}')
    reject_unknown_keys(value, ("SINKS", *SINK_SETTINGS), path)
    classes = []
    for i, dotted in enumerate(value.get("SINKS", [])):
        where = f'{path}["SINKS"][{i}]'
        if not isinstance(dotted, str):
            raise ConfigurationError(f"{where} must be a dotted path, got {dotted!r}")
        cls = import_path(dotted, where)
        if not (isinstance(cls, type) and issubclass(cls, MetricsSink)):
            raise ConfigurationError(f"{where} names {dotted!r}, which is not a MetricsSink subclass")
        classes.append(cls)
    options = {key: import_path(parser, path)(value.get(key), f'{path}["{key}"]') for key, parser in SINK_SETTINGS.items()}
    return MetricsSettings(tuple(classes), options)


def gauge_of(event: Event) -> tuple[str, float] | None:
    """The gauge ``event`` sets and its value (``GAUGES``), or None."""
    entry = GAUGES.get((event.area, event.kind))
    if entry is None:
        return None
    value = event.fields.get(entry[1])
    return (entry[0], float(value)) if is_number(value) else None


def _set_gauges(sender: object, event: Event, **kwargs: object) -> None:
    """``event_emitted`` receiver: the event's gauge, in every sink (which count it already)."""
    found = gauge_of(event)
    if found is None:
        return
    from resilience.observability.events import sinks  # imports this module: at call time

    for sink in sinks():
        try:
            sink.gauge(found[0], found[1], {"name": event.name[:200]})
        except Exception:  # noqa: BLE001 - metrics must never break a call; the counter path logs broken sinks
            pass


event_emitted.connect(_set_gauges, dispatch_uid="resilience.metrics.gauges")
