"""``IntervalSink``: counts in process, shipped every interval: the part both CloudWatch sinks share.

``increment``/``gauge`` only update a dict under a lock (no I/O, the path of the call); a daemon
thread calls ``_ship`` every ``config.interval`` seconds with what the interval held. Each counter
series keeps a statistic set of its increments (sample count, sum, minimum, maximum; the EMF sink
writes the sum, ``PutMetricData`` takes the set); a gauge keeps its last value. Series past
``config.max_series`` in an interval are dropped and counted (``metrics series_overflow``).

At exit every open sink is closed (its last interval shipped, 2 seconds in all); after a fork the
child starts empty and leaves what the parent counted to the parent.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from typing import Protocol

from resilience.core.event import Event
from resilience.observability.emf_settings import MAX_DIMENSIONS, dimension_name_problem, dimension_value
from resilience.observability.events import emit
from resilience.observability.metrics import MetricsSink

MAX_NUMBER = 2.0**360  # CloudWatch refuses values of larger magnitude
CLOSE_TIMEOUT = 2.0  # seconds a close (settings change, exit) waits for the last interval
Tags = tuple[tuple[str, str], ...]
Series = tuple[str, Tags]  # (metric, tags as given)
Stat = list[float]  # one counter's increments in the interval: [sample count, sum, minimum, maximum]
_open: weakref.WeakSet[IntervalSink] = weakref.WeakSet()


class IntervalConfig(Protocol):
    @property
    def interval(self) -> float: ...
    @property
    def max_series(self) -> int: ...
    @property
    def dimensions(self) -> Tags: ...


class IntervalSink(MetricsSink):
    """Aggregates in process; ``_ship`` (a subclass's) sends an interval's values somewhere.

    ``thread=False`` leaves flushing to whoever calls ``flush()`` (tests)."""

    source = "interval"  # the ``name`` of the sink's own events (``metrics series_overflow name=...``)
    thread_name = "resilience-metrics"
    config: IntervalConfig

    def __init__(self, *, thread: bool = True) -> None:
        self._threaded = thread
        self._static = dict(self.config.dimensions)
        self._closed = False
        self._reset_state()
        _open.add(self)

    def _reset_state(self) -> None:
        """Empty counters, new locks, no thread: at start and in a forked child (the parent ships its own)."""
        self._lock = threading.Lock()  # the counters
        self._counts: dict[Series, Stat] = {}
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
            stat = counts.get(key)
            if stat is not None:
                stat[0] += 1
                stat[1] += value
                if value < stat[2]:
                    stat[2] = value
                elif value > stat[3]:
                    stat[3] = value
            elif len(counts) + len(self._levels) < self.config.max_series:
                counts[key] = [1, value, value, value]
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
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.interval):
            self.flush()
        self._drain_and_ship()  # the last interval, on close; its events would reach a sink being replaced

    def flush(self) -> None:
        """Ship the interval's values now and report what was dropped or failed; never raises."""
        for event in self._drain_and_ship():
            emit(event)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Ship what is pending and stop the thread, waiting at most ``timeout`` seconds."""
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._drain_and_ship()
        elif thread is not threading.current_thread():
            thread.join(timeout)

    def _drain_and_ship(self) -> list[Event]:
        """Take the interval's values and ship them: the events to report (drops, a failure)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            levels, self._levels = self._levels, {}
            overflow, self._overflow = self._overflow, 0
        found = []
        if overflow:
            fields = {"count": overflow, "max_series": self.config.max_series}
            found.append(Event("metrics", "series_overflow", self.source, fields))
        return found + self._ship(counts, levels)

    def _ship(self, counts: dict[Series, Stat], levels: dict[Series, float]) -> list[Event]:
        """Send one interval's values; the events to report. Must not raise."""
        raise NotImplementedError

    def _dimensions(self, tags: Tags) -> Tags | None:
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


def writable(metric: object, value: float, dimensions: Tags, max_name: int) -> bool:
    """A metric CloudWatch takes: a name of 1-``max_name`` characters that is no dimension's, a finite number."""
    if not isinstance(metric, str) or not metric.strip() or len(metric) > max_name or metric == "_aws":
        return False
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or abs(value) > MAX_NUMBER:
        return False
    return all(metric != name for name, _ in dimensions)


def number(value: float) -> float | int:
    """Whole numbers as integers (``3``, not ``3.0``)."""
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _close_all() -> None:
    """At exit: each sink ships its last interval, within ``CLOSE_TIMEOUT`` in all."""
    deadline = time.monotonic() + CLOSE_TIMEOUT
    for sink in list(_open):
        sink.close(max(0.0, deadline - time.monotonic()))


def _after_fork() -> None:
    for sink in list(_open):
        sink._reset_state()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork)
