"""``PrometheusSink``: event counters as prometheus_client metrics; breaker state read at scrape time.

Counting is in process and off the path of the call: ``increment`` only adds to a prometheus_client
counter (a float under a lock; under gunicorn's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, a
value in the worker's mmap file). Nothing is exported until a scrape: ``resilience.urls`` merges the
workers' files (``MultiProcessCollector``) and adds ``BreakerStateCollector``, which reads every
breaker from the shared store at that moment, so the state is exact, not a sample of one worker.

Calls through a breaker that succeed, fail or are ignored emit no event (that would be the closed
state's hot path): each breaker keeps plain totals in process (``CircuitBreaker.call_totals()``),
and ``CallTotalsExporter`` adds what they grew by to ``resilience_breaker_calls_total`` every
``export_interval`` seconds (5), at each scrape of this process and when the sink closes, off the
path of every call. Rejections (``not_permitted``) are events and counted as they happen.

Event metrics (``resilience.<area>.<kind>``) map to families named in resilience4j's spirit
(``ROUTES``); any other event is ``resilience_events_total{area,kind,name}``. Labels are bounded:
``name`` comes from code and settings (breaker, policy, service names; at most 200 characters), and
past ``max_series`` label sets per family a new name is counted as ``"_other"``; every other label
comes from a closed set. No request input ever becomes a label.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

try:
    from prometheus_client import Counter, Gauge
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.metrics_core import Metric
except ImportError as exc:  # pragma: no cover - exercised without the prometheus extra
    from resilience.integrations.extras import missing

    raise missing("prometheus_client", "resilience.observability.prometheus.PrometheusSink") from exc

from resilience.conf import resilience_settings
from resilience.core.breaker_state import State
from resilience.core.retry import OUTCOMES, Retrying
from resilience.observability.metrics import MetricsSink
from resilience.observability.prometheus_settings import PrometheusConfig

OTHER = "_other"  # the name of every series past max_series
MAX_LABEL = 200  # characters of a name label
STATES = tuple(state.value for state in State)


@dataclass(frozen=True)
class Family:
    """One Prometheus counter: its name (``_total`` is added on exposition), help and labels."""

    name: str
    documentation: str
    labels: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "transitions": Family("resilience_breaker_transitions", "Breaker transitions, by the state entered", ("name", "to_state")),
    "calls": Family("resilience_breaker_calls", "Calls through a breaker, by kind", ("name", "kind")),
    "retry": Family("resilience_retry_calls", "Calls through a retry policy, by outcome", ("name", "kind")),
    "retry_events": Family("resilience_retry_decisions", "Retry decisions: a retry, a give-up", ("name", "kind")),
    "budget": Family("resilience_retry_budget_refusals", "Retries refused by a retry budget", ("name",)),
    "ratelimit": Family("resilience_ratelimit_decisions", "Rate-limit decisions, by decision", ("name", "decision")),
    "fallback": Family("resilience_fallback_served", "Fallbacks served, by step", ("name", "step")),
    "failover": Family("resilience_aws_failovers", "AWS region failovers and failbacks, by kind", ("name", "kind")),
    "events": Family("resilience_events", "Every other event, by area and kind", ("area", "kind", "name")),
}
FALLBACK_STEPS = ("alternative", "stale", "default", "degraded", "exhausted")
# Event metric -> (family, its fixed labels). ``name`` is the event's name; ``to_state`` its new_state.
ROUTES: dict[str, tuple[str, dict[str, str]]] = {
    "resilience.breaker.transition": ("transitions", {}),
    "resilience.breaker.rejected": ("calls", {"kind": "not_permitted"}),
    "resilience.retry.retry": ("retry_events", {"kind": "retried"}),
    "resilience.retry.give_up": ("retry_events", {"kind": "given_up"}),
    "resilience.retry.budget_refused": ("budget", {}),
    "resilience.ratelimit.rejected": ("ratelimit", {"decision": "rejected"}),
    "resilience.ratelimit.shadow_rejected": ("ratelimit", {"decision": "shadow_rejected"}),
    **{f"resilience.fallback.{step}": ("fallback", {"step": step}) for step in FALLBACK_STEPS},
    **{f"resilience.aws.{kind}": ("failover", {"kind": kind}) for kind in ("failover", "failback", "last_known_good")},
    "resilience.ratelimit.store_unavailable": ("ratelimit", {"decision": "store_unavailable"}),
    # not events: the breakers' call totals and the limiter's admitted decisions, exported every
    # ``export_interval`` (``CallTotalsExporter``)
    **{f"resilience.breaker.{kind}": ("calls", {"kind": kind}) for kind in ("successful", "failed", "ignored")},
    "resilience.ratelimit.allowed": ("ratelimit", {"decision": "allowed"}),
    **{f"resilience.retry.{kind}": ("retry", {"kind": kind}) for kind in OUTCOMES},
}
CALL_KINDS = ("successful", "failed", "ignored")  # the order of ``CircuitBreaker.call_totals()``
GAUGE_NAMES = {"resilience.aws.credentials_expires_in": "resilience_aws_credentials_expires_in_seconds"}

_lock = threading.Lock()
_counters: dict[str, Counter] = {}
_gauges: dict[str, Gauge] = {}


def _build() -> None:
    """The metric objects, once per process (prometheus_client refuses a name registered twice)."""
    with _lock:
        if _counters:
            return
        for key, family in FAMILIES.items():
            _counters[key] = Counter(family.name, family.documentation, family.labels)
        for metric, name in GAUGE_NAMES.items():  # the most recent value of a live worker wins
            _gauges[metric] = Gauge(
                name, "Seconds until the AWS credentials expire", ("name",), multiprocess_mode="livemostrecent"
            )


class PrometheusSink(MetricsSink):
    """Counts events in prometheus_client counters (``RESILIENCE["METRICS"]["PROMETHEUS"]``)."""

    def __init__(self, config: PrometheusConfig | None = None, *, thread: bool = True) -> None:
        self.config = config if config is not None else resilience_settings.METRICS.options["PROMETHEUS"]
        _build()
        self._seen: dict[str, set[tuple[str, ...]]] = {key: set() for key in FAMILIES}
        self._seen_lock = threading.Lock()
        self.exporter = CallTotalsExporter(self, self.config.export_interval)
        if thread:
            self.exporter.start()
        _current[0] = self

    def close(self) -> None:
        self.exporter.stop()
        self.exporter.export()
        if _current[0] is self:
            _current[0] = None

    def labels(self, metric: str, tags: dict[str, str] | None) -> tuple[str, tuple[str, ...]]:
        """The family and label values ``metric`` with ``tags`` is counted under (bounded, see the module)."""
        tags = tags or {}
        name = str(tags.get("name", ""))[:MAX_LABEL]
        route = ROUTES.get(metric)
        if route is None:
            _, area, kind = (metric.split(".", 2) + ["", ""])[:3]
            key, values = "events", {"area": area[:MAX_LABEL], "kind": kind[:MAX_LABEL]}
        else:
            key, values = route[0], dict(route[1])
        if key == "transitions":
            state = tags.get("new_state", "")
            values["to_state"] = state if state in STATES else OTHER
        values["name"] = name
        labels = tuple(values[label] for label in FAMILIES[key].labels)
        seen = self._seen[key]
        if labels not in seen:
            with self._seen_lock:
                if len(seen) >= self.config.max_series:
                    values["name"] = OTHER
                    labels = tuple(values[label] for label in FAMILIES[key].labels)
                seen.add(labels)
        return key, labels

    def increment(self, metric: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        key, labels = self.labels(metric, tags)
        _counters[key].labels(*labels).inc(value)

    def gauge(self, metric: str, value: float, tags: dict[str, str] | None = None) -> None:
        gauge = _gauges.get(metric)
        if gauge is not None:
            gauge.labels(str((tags or {}).get("name", ""))[:MAX_LABEL]).set(value)


_current: list[PrometheusSink | None] = [None]  # the sink of the current settings, for the scrape view


def export_call_totals() -> None:
    """Bring this process's call totals into the counters now (the scrape view calls it first)."""
    sink = _current[0]
    if sink is not None:
        sink.exporter.export()


class CallTotalsExporter:
    """Adds what each breaker's ``call_totals()`` grew by since the last export to the ``calls`` family."""

    def __init__(self, sink: PrometheusSink, interval: float) -> None:
        self.sink, self.interval = sink, interval
        self._last: weakref.WeakKeyDictionary[Any, tuple[int, int, int]] = weakref.WeakKeyDictionary()
        self._admitted: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()
        self._outcomes: weakref.WeakKeyDictionary[Any, tuple[int, int, int, int]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pid = os.getpid()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="resilience-prometheus-export").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.export()
            except Exception:  # noqa: BLE001 - the exporter must outlive a broken breaker or counter
                pass

    def export(self) -> None:
        from resilience.breakers.registry import breakers  # the registry imports the event path
        from resilience.ratelimit.limiter import built_limiter

        with self._lock:
            if os.getpid() != self._pid:  # a forked child: its breakers start from the parent's totals
                self._pid, self._last = os.getpid(), weakref.WeakKeyDictionary()
                self._admitted, self._outcomes = weakref.WeakKeyDictionary(), weakref.WeakKeyDictionary()
            for breaker in breakers.local():
                totals = breaker.call_totals()
                last = self._last.get(breaker, (0, 0, 0))
                for kind, now, before in zip(CALL_KINDS, totals, last, strict=True):
                    if now > before:
                        self.sink.increment(f"resilience.breaker.{kind}", float(now - before), {"name": breaker.name})
                self._last[breaker] = totals
            for retrying in Retrying.live():
                outcomes = retrying.outcome_totals()
                last_outcomes = self._outcomes.get(retrying, (0, 0, 0, 0))
                for kind, now, before in zip(OUTCOMES, outcomes, last_outcomes, strict=True):
                    if now > before:
                        self.sink.increment(f"resilience.retry.{kind}", float(now - before), {"name": retrying.policy.name})
                self._outcomes[retrying] = outcomes
            limiter = built_limiter()
            if limiter is not None:
                admitted = limiter.allowed_totals()
                before_admitted = self._admitted.get(limiter, {})
                for name, count in admitted.items():
                    if count > before_admitted.get(name, 0):
                        grown = float(count - before_admitted.get(name, 0))
                        self.sink.increment("resilience.ratelimit.allowed", grown, {"name": name})
                self._admitted[limiter] = admitted


class BreakerStateCollector:
    """A prometheus_client collector: every breaker, read from the shared store at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from resilience.breakers.registry import breakers  # Django settings are read at scrape time

        state = GaugeMetricFamily("resilience_breaker_state", "1 for the current state, 0 for others", labels=["name", "state"])
        failure = GaugeMetricFamily("resilience_breaker_failure_rate", "Percent of failed calls in the window", labels=["name"])
        slow = GaugeMetricFamily("resilience_breaker_slow_rate", "Percent of slow calls in the window", labels=["name"])
        calls = GaugeMetricFamily("resilience_breaker_window_calls", "Calls in the breaker's window", labels=["name"])
        up = GaugeMetricFamily("resilience_breaker_store_up", "1 when the shared breaker store answered this scrape")
        try:
            snapshots = breakers.all()
            ok = 1.0
        except Exception:  # noqa: BLE001 - a scrape never fails on the store; store_up says so
            snapshots, ok = [], 0.0
        for snap in snapshots:
            for value in STATES:
                state.add_metric([snap.name, value], 1.0 if snap.state == value else 0.0)
            failure.add_metric([snap.name], snap.failure_rate)
            slow.add_metric([snap.name], snap.slow_rate)
            calls.add_metric([snap.name], snap.calls)
        up.add_metric([], ok)
        yield from (state, failure, slow, calls, up)
