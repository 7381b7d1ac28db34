"""Metrics sinks: where event counts go. Pluggable by dotted path in ``RESILIENCE["METRICS"]["SINKS"]``."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from resilience.core.validation import import_path, reject_unknown_keys
from resilience.exceptions import ConfigurationError


class MetricsSink:
    """Base contract: count things with tags. Subclasses ship them somewhere (CloudWatch, Prometheus)."""

    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        raise NotImplementedError


class InMemorySink(MetricsSink):
    """Keeps counters in process memory; for tests and the admin. ``InMemorySink.last`` is the latest instance."""

    last: InMemorySink | None = None

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self._lock = threading.Lock()
        InMemorySink.last = self

    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        key = (metric, tuple(sorted((tags or {}).items())))
        with self._lock:
            self.counters[key] += value

    def value(self, metric: str, **tags: str) -> float:
        """Sum of ``metric`` over every series whose tags include ``tags``."""
        with self._lock:
            return sum(v for (m, t), v in self.counters.items() if m == metric and set(tags.items()) <= set(t))


def parse_metrics(value: Any, path: str) -> tuple[type[MetricsSink], ...]:
    """The sink classes of ``RESILIENCE["METRICS"]`` (its ``PARSERS`` entry): each path must import and
    name a ``MetricsSink`` subclass, so a typo is a system-check error at start-up, not a lost metric."""
    if not isinstance(value, dict) or not isinstance(value.get("SINKS", []), (list, tuple)):
        raise ConfigurationError(f'{path} must be a dict with a list "SINKS", got {value!r}')
    reject_unknown_keys(value, ("SINKS",), path)
    classes = []
    for i, dotted in enumerate(value.get("SINKS", [])):
        where = f'{path}["SINKS"][{i}]'
        if not isinstance(dotted, str):
            raise ConfigurationError(f"{where} must be a dotted path, got {dotted!r}")
        cls = import_path(dotted, where)
        if not (isinstance(cls, type) and issubclass(cls, MetricsSink)):
            raise ConfigurationError(f"{where} names {dotted!r}, which is not a MetricsSink subclass")
        classes.append(cls)
    return tuple(classes)
