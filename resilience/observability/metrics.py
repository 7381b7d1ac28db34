"""Metrics sinks: where event counts go. Pluggable by dotted path in ``RESILIENCE["METRICS"]["SINKS"]``."""

from __future__ import annotations

import threading
from collections import defaultdict


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
