"""``CloudWatchEMFSink``: metrics as CloudWatch Embedded Metric Format lines, on stdout or a logger.

No API call: CloudWatch Logs extracts the metrics from the lines (Lambda does it for stdout; on ECS
and EKS the CloudWatch agent or Fluent Bit ships them). Counting is in process and off the path of
the call: ``increment``/``gauge`` only update a dict under a lock; a daemon thread writes every
``interval`` seconds, counters summed over the interval and gauges at their last value.

One line holds one value per dimension, so each distinct set of tags is a line of its own (split
again past 100 metrics); a line never has more than 30 dimensions (static + tags). Series past
``max_series`` in an interval, and series that cannot be written (too many dimensions, a bad name, a
number CloudWatch refuses) are dropped and counted: the events ``metrics series_overflow`` and
``metrics series_refused``. A write that fails (a closed stream, a broken handler) is the event
``metrics write_failed``: never an exception into a call, and logs summarised like every event.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.observability.emf_settings import MAX_METRICS, MAX_VALUE, EMFConfig
from resilience.observability.interval_sink import CLOSE_TIMEOUT, IntervalSink, Series, Stat, number, writable

__all__ = ["CLOSE_TIMEOUT", "CloudWatchEMFSink"]


class CloudWatchEMFSink(IntervalSink):
    """Aggregates in process; writes EMF lines every ``interval`` (``RESILIENCE["METRICS"]["EMF"]``).

    ``clock`` (wall time, seconds) stamps the lines; ``thread=False`` leaves flushing to whoever calls
    ``flush()`` (tests)."""

    options_key = "EMF"  # its settings in RESILIENCE["METRICS"], whose namespace and dimensions alarms watch

    source = "emf"
    thread_name = "resilience-emf"
    config: EMFConfig

    def __init__(self, config: EMFConfig | None = None, *, clock: Callable[[], float] = time.time, thread: bool = True) -> None:
        self.config = config if config is not None else resilience_settings.METRICS.options["EMF"]
        self._clock = clock
        super().__init__(thread=thread)

    def _reset_state(self) -> None:
        super()._reset_state()
        self._write_lock = threading.Lock()  # the output: an explicit flush and the thread never interleave lines

    def _ship(self, counts: dict[Series, Stat], levels: dict[Series, float]) -> list[Event]:
        """Write the interval's values as lines: the events to report (refused series, a failed write)."""
        found = []
        lines: list[str] = []
        try:
            sums = {series: stat[1] for series, stat in counts.items()}
            lines, refused = self._lines(sums, levels, int(self._clock() * 1000))
            if refused:
                found.append(Event("metrics", "series_refused", "emf", {"count": refused}))
            self._write(lines)
        except Exception as exc:  # noqa: BLE001 - a broken stream or handler must never reach a call, nor stop the thread
            found.append(Event("metrics", "write_failed", "emf", {"count": len(lines), "error": type(exc).__name__}))
        return found

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._write_lock:
            if self.config.logger is None:
                stream = sys.stdout  # looked up each time: redirections and test capture apply
                for line in lines:
                    stream.write(line + "\n")
                stream.flush()
            else:
                logger = logging.getLogger(self.config.logger)
                for line in lines:
                    logger.info(line)

    def _lines(self, counts: dict[Series, float], levels: dict[Series, float], timestamp: int) -> tuple[list[str], int]:
        """The EMF lines of one interval, and how many series were refused."""
        groups: dict[tuple[bool, tuple[tuple[str, str], ...]], list[tuple[str, float]]] = {}
        refused = 0
        for is_count, table in ((True, counts), (False, levels)):
            for (metric, tags), value in table.items():
                dimensions = self._dimensions(tags)
                if dimensions is None or not writable(metric, value, dimensions, MAX_VALUE):
                    refused += 1
                    continue
                groups.setdefault((is_count, dimensions), []).append((metric, value))
        lines = [
            line
            for (is_count, dimensions), metrics in groups.items()
            for line in self._document(is_count, dimensions, metrics, timestamp)
        ]
        return lines, refused

    def _document(
        self, is_count: bool, dimensions: tuple[tuple[str, str], ...], metrics: list[tuple[str, float]], timestamp: int
    ) -> Iterator[str]:
        """One JSON line per 100 metrics sharing ``dimensions``."""
        extra: dict[str, object] = {"Unit": "Count"} if is_count else {}
        if self.config.storage_resolution == 1:
            extra["StorageResolution"] = 1  # 60 is CloudWatch's default
        for start in range(0, len(metrics), MAX_METRICS):
            chunk = metrics[start : start + MAX_METRICS]
            directive = {
                "Namespace": self.config.namespace,
                "Dimensions": [[name for name, _ in dimensions]],
                "Metrics": [{"Name": metric, **extra} for metric, _ in chunk],
            }
            document: dict[str, object] = {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]}}
            document.update(dimensions)
            document.update((metric, number(value)) for metric, value in chunk)
            yield json.dumps(document, separators=(",", ":"), ensure_ascii=True)
