"""``CloudWatchSink``: metrics sent to CloudWatch with ``PutMetricData``, from a background thread.

Counting is the EMF sink's (``interval_sink``): in process, off the path of the call. Every interval
(60 s; 1 s with ``high_resolution``) the flusher thread turns what was counted into ``MetricData``
entries (``cloudwatch_batches``: statistic sets, at most 1,000 entries and 1 MB a call) and puts the
batches on a bounded queue; a sender thread takes them off and calls ``PutMetricData``.

The sender's client comes from ``resilience.integrations.aws.session()``, made in the sender thread
on first use: its calls go through the breaker ``aws:cloudwatch:<region>`` and the ``aws`` retry
policy, with botocore's gzip request compression (bodies of 10 KiB and more, botocore's default).
Nothing here can block or fail a call: a full queue drops the batch (``metrics batch_dropped
reason=queue_full``), an open breaker drops it unsent (``reason=breaker_open``), a call that fails
loses it (``metrics write_failed``); each is an event, its log line summarised like every event's.
The sink counts those events too, and ships them with the next interval: a few series, not a loop
that grows (a successful call emits nothing).
"""

from __future__ import annotations

import contextlib
import datetime
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config

from resilience.conf import resilience_settings
from resilience.core.deadline import deadline
from resilience.core.event import Event
from resilience.exceptions import CircuitOpenError
from resilience.integrations.aws.config import botocore_config
from resilience.integrations.aws.protection import session
from resilience.observability.cloudwatch_batches import Entry, batches, entries
from resilience.observability.cloudwatch_settings import CloudWatchConfig
from resilience.observability.events import emit
from resilience.observability.interval_sink import CLOSE_TIMEOUT, IntervalSink, Series, Stat

# Each attempt's bounds (the aws policy makes up to its ``attempts``): PutMetricData answers in tens
# of milliseconds, and a black-holed endpoint must count as a failure of the breaker, so these are
# the client's timeouts rather than a deadline (a call cut by a deadline is not the service's fault).
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
_STOP = None  # on the queue: the sender has sent everything before it and ends


class CloudWatchSink(IntervalSink):
    """Aggregates in process; sends every interval with ``PutMetricData`` (``RESILIENCE["METRICS"]["CLOUDWATCH"]``).

    ``clock`` (wall time, seconds) stamps the data points; ``thread=False``: no threads, the test calls
    ``flush()`` (the queue) and ``send_pending()`` (the calls)."""

    options_key = "CLOUDWATCH"  # its settings in RESILIENCE["METRICS"], whose namespace and dimensions alarms watch

    source = "cloudwatch"
    thread_name = "resilience-cloudwatch"
    config: CloudWatchConfig

    def __init__(
        self, config: CloudWatchConfig | None = None, *, clock: Callable[[], float] = time.time, thread: bool = True
    ) -> None:
        self.config = config if config is not None else resilience_settings.METRICS.options["CLOUDWATCH"]
        self._clock = clock
        super().__init__(thread=thread)

    def _reset_state(self) -> None:
        super()._reset_state()
        self._queue: queue.Queue[list[Entry] | None] = queue.Queue(self.config.queue_size)
        self._sender: threading.Thread | None = None
        self._client: Any = None  # made in the thread that sends (and again in a forked child)
        self._close_by: float | None = None  # monotonic time by which close() must be done

    # The flusher thread: an interval's values onto the queue, never waiting for room.
    def _ship(self, counts: dict[Series, Stat], levels: dict[Series, float]) -> list[Event]:
        found = []
        try:
            stamp = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
            made, refused = entries(counts, levels, self._dimensions, stamp, self.config.storage_resolution)
            if refused:
                found.append(Event("metrics", "series_refused", self.source, {"count": refused}))
            for batch in batches(self.config.namespace, made):
                try:
                    self._queue.put_nowait(batch)
                except queue.Full:
                    found.append(self._dropped(batch, "queue_full"))
        except Exception as exc:  # noqa: BLE001 - never into a call, never the end of the thread
            found.append(
                Event("metrics", "write_failed", self.source, {"count": len(counts) + len(levels), "error": type(exc).__name__})
            )
        if self._threaded and not self._queue.empty():
            self._start_sender()
        return found

    def _dropped(self, batch: list[Entry], reason: str) -> Event:
        return Event("metrics", "batch_dropped", self.source, {"count": len(batch), "reason": reason})

    # The sender thread: batches off the queue, one PutMetricData call each.
    def _start_sender(self) -> None:
        with self._start_lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_loop, name=f"{self.thread_name}-sender", daemon=True)
                self._sender.start()

    def _send_loop(self) -> None:
        while (batch := self._queue.get()) is not _STOP:
            self._report(self._send(batch))

    def send_pending(self) -> None:
        """Send every batch on the queue now, in this thread (``thread=False``); never raises."""
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return
            if batch is not _STOP:
                self._report(self._send(batch))

    def _report(self, found: list[Event]) -> None:
        if self._close_by is None:  # while closing, events would reach the sinks replacing this one
            for event in found:
                emit(event)

    def _send(self, batch: list[Entry]) -> list[Event]:
        """One ``PutMetricData`` call: the events to report (nothing when it went through). While
        closing, the call is cut at the close's bound; otherwise the client's timeouts bound it."""
        left = None if self._close_by is None else self._close_by - time.monotonic()
        if left is not None and left <= 0:
            return [self._dropped(batch, "closing")]
        try:
            with deadline(left) if left is not None else contextlib.nullcontext():
                self._cloudwatch().put_metric_data(Namespace=self.config.namespace, MetricData=batch)
        except CircuitOpenError:
            return [self._dropped(batch, "breaker_open")]  # nothing was sent
        except Exception as exc:  # noqa: BLE001 - a failed call loses its batch, never more
            return [Event("metrics", "write_failed", self.source, {"count": len(batch), "error": type(exc).__name__})]
        return []

    def _cloudwatch(self) -> Any:
        if self._client is None:
            config = botocore_config(Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT))
            self._client = session().client(
                "cloudwatch", region_name=self.config.region, endpoint_url=self.config.endpoint_url, config=config
            )
        return self._client

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Queue the last interval, send what is queued and stop, all within ``timeout`` seconds; never raises."""
        self._close_by = time.monotonic() + timeout
        super().close(timeout)  # the flusher queues its last interval (or this thread does, with no flusher)
        if not self._threaded:
            self.send_pending()
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)  # full: the sender is stuck behind a dead endpoint; it is a daemon
        sender = self._sender
        if sender is not None and sender is not threading.current_thread():
            sender.join(max(0.0, self._close_by - time.monotonic()))
