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

import atexit
import json
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.observability.emf_settings import (
    MAX_DIMENSIONS,
    MAX_METRICS,
    MAX_VALUE,
    EMFConfig,
    dimension_name_problem,
    dimension_value,
)
from resilience.observability.events import emit
from resilience.observability.metrics import MetricsSink

MAX_NUMBER = 2.0**360  # CloudWatch refuses values of larger magnitude
CLOSE_TIMEOUT = 2.0  # seconds a close (settings change, exit) waits for the last flush
Series = tuple[str, tuple[tuple[str, str], ...]]  # (metric, tags as given)
_open: weakref.WeakSet[CloudWatchEMFSink] = weakref.WeakSet()


class CloudWatchEMFSink(MetricsSink):
    """Aggregates in process; writes EMF lines every ``interval`` (``RESILIENCE["METRICS"]["EMF"]``).

    ``clock`` (wall time, seconds) stamps the lines; ``thread=False`` leaves flushing to whoever calls
    ``flush()`` (tests)."""

    def __init__(self, config: EMFConfig | None = None, *, clock: Callable[[], float] = time.time, thread: bool = True) -> None:
        self.config = config if config is not None else resilience_settings.METRICS.options["EMF"]
        self._clock = clock
        self._threaded = thread
        self._static = dict(self.config.dimensions)
        self._closed = False
        self._reset_state()
        _open.add(self)

    def _reset_state(self) -> None:
        """Empty counters, new locks, no thread: at start and in a forked child (the parent ships its own)."""
        self._lock = threading.Lock()  # the counters
        self._write_lock = threading.Lock()  # the output: an explicit flush and the thread never interleave lines
        self._counts: dict[Series, float] = {}
        self._levels: dict[Series, float] = {}
        self._overflow = 0  # data points dropped past max_series this interval
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        if self._closed:
            self._stop.set()  # a closed sink stays closed in a child
        self._thread: threading.Thread | None = None

    # The hot path: one lock, dict updates, nothing else.
    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        key = (metric, tuple(tags.items()) if tags else ())
        with self._lock:
            counts = self._counts
            if key in counts:
                counts[key] += value
            elif len(counts) + len(self._levels) < self.config.max_series:
                counts[key] = value
            else:
                self._overflow += 1
        if self._thread is None and self._threaded:
            self._start()

    def gauge(self, metric: str, value: float, tags: dict[str, str] | None = None) -> None:
        key = (metric, tuple(tags.items()) if tags else ())
        with self._lock:
            levels = self._levels
            if key in levels or len(self._counts) + len(levels) < self.config.max_series:
                levels[key] = value
            else:
                self._overflow += 1
        if self._thread is None and self._threaded:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="resilience-emf", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.interval):
            self.flush()
        self._drain_and_write()  # the last interval, on close; its events would reach a sink being replaced

    def flush(self) -> None:
        """Write the interval's lines now and report what was dropped or failed; never raises."""
        for event in self._drain_and_write():
            emit(event)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is pending and stop the thread, waiting at most ``timeout`` seconds."""
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._drain_and_write()
        elif thread is not threading.current_thread():
            thread.join(timeout)

    def _drain_and_write(self) -> list[Event]:
        """Take the interval's values, write them as lines: the events to report (drops, a failed write)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            levels, self._levels = self._levels, {}
            overflow, self._overflow = self._overflow, 0
        found = []
        if overflow:
            found.append(Event("metrics", "series_overflow", "emf", {"count": overflow, "max_series": self.config.max_series}))
        lines: list[str] = []
        try:
            lines, refused = self._lines(counts, levels, int(self._clock() * 1000))
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
                if dimensions is None or not _writable(metric, value, dimensions):
                    refused += 1
                    continue
                groups.setdefault((is_count, dimensions), []).append((metric, value))
        lines = [
            line
            for (is_count, dimensions), metrics in groups.items()
            for line in self._document(is_count, dimensions, metrics, timestamp)
        ]
        return lines, refused

    def _dimensions(self, tags: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...] | None:
        """Static dimensions then the tags, as CloudWatch takes them; None when they cannot be."""
        if len(self._static) + len(tags) > MAX_DIMENSIONS:
            return None
        names = set(self._static)
        written = []
        for name, value in tags:
            if name in names or dimension_name_problem(name) is not None:
                return None
            names.add(name)
            written.append((name, dimension_value(str(value))))
        return (*self.config.dimensions, *written)

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
            document.update((metric, _number(value)) for metric, value in chunk)
            yield json.dumps(document, separators=(",", ":"), ensure_ascii=True)


def _writable(metric: object, value: float, dimensions: tuple[tuple[str, str], ...]) -> bool:
    """A metric CloudWatch takes: a name of 1-1024 characters that is no dimension's, a finite number."""
    if not isinstance(metric, str) or not metric.strip() or len(metric) > MAX_VALUE or metric == "_aws":
        return False
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or abs(value) > MAX_NUMBER:
        return False
    return all(metric != name for name, _ in dimensions)


def _number(value: float) -> float | int:
    """Whole numbers as integers (``3``, not ``3.0``)."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _close_all() -> None:
    """At exit: each sink writes its last interval, within ``CLOSE_TIMEOUT`` in all."""
    deadline = time.monotonic() + CLOSE_TIMEOUT
    for sink in list(_open):
        sink.close(max(0.0, deadline - time.monotonic()))


def _after_fork() -> None:
    for sink in list(_open):
        sink._reset_state()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork)
