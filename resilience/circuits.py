"""What operators see of circuits: each breaker with its last transition and last trip, the state
timelines drawn from ``CircuitEvent``, configured breakers with no sign of use, and store health.

The admin's "Circuits" page and the demo's status page read it; every function here makes a fixed
number of queries whatever the number of breakers or events (no query per breaker).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Q, Subquery
from django.utils import timezone
from django.utils.html import format_html_join

from resilience.breakers.registry import BreakerSnapshot, breakers
from resilience.conf import resilience_settings
from resilience.core.budget import LocalRetryBudget
from resilience.models import CircuitEvent
from resilience.observability import timeline
from resilience.ratelimit.limiter import REDIS_BREAKER, limiter
from resilience.retries.policies import budgets


@dataclass(frozen=True)
class Range:
    """A timeline range: its length, how many buckets it is drawn in, and its axis step."""

    key: str
    label: str
    length: timedelta
    buckets: int
    tick_every: timedelta


RANGES = {
    "24h": Range("24h", "last 24 hours", timedelta(hours=24), 96, timedelta(hours=3)),  # 15-minute buckets
    "7d": Range("7d", "last 7 days", timedelta(days=7), 168, timedelta(days=1)),  # 1-hour buckets
}


@dataclass
class CircuitRow:
    snap: BreakerSnapshot
    since: float | None  # seconds since the last transition
    last: CircuitEvent | None = None  # the latest recorded transition or manual action
    last_trip: CircuitEvent | None = None  # the latest transition into "open"


@dataclass(frozen=True)
class StoreStatus:
    store: str  # what the store holds
    where: str  # "Redis (every worker)" or "in-process (this worker)"
    healthy: bool
    detail: str = ""


@dataclass(frozen=True)
class Bar:
    """One segment as drawn: position, state, and the text of its ``<title>`` (its accessible name)."""

    x: float
    width: float
    state: str
    title: str


@dataclass
class BreakerTimeline:
    name: str
    bars: list[Bar] = field(default_factory=list)
    transitions: int = 0

    @property
    def svg(self) -> str:
        """The bars as SVG ``<rect>`` elements, escaped. Built here rather than in a template loop:
        a week of a flapping breaker is up to 168 bars, and 25 rows of them rendered through template
        tags cost ~300 ms a page, joined here ~30 ms."""
        rect = '<rect class="segment state-{}" x="{}" width="{}" height="20" fill="url(#cb-{})" role="listitem">'
        rect += "<title>{}</title></rect>"
        return format_html_join("", rect, ((b.state, f"{b.x:.2f}", f"{b.width:.2f}", b.state, b.title) for b in self.bars))


def rows(snaps: Iterable[BreakerSnapshot]) -> list[CircuitRow]:
    """One row per snapshot, with its last event and last trip from the history: two queries."""
    now = time.time()
    out = {s.name: CircuitRow(s, (now - s.since) if s.since else None) for s in snaps}
    latest = (
        CircuitEvent.objects.filter(breaker__in=list(out))
        .values("breaker")
        .annotate(last=Max("id"), trip=Max("id", filter=Q(new_state="open")))
    )
    wanted = {row["last"] for row in latest} | {row["trip"] for row in latest if row["trip"] is not None}
    events = {e.id: e for e in CircuitEvent.objects.filter(id__in=wanted)} if wanted else {}
    for row in latest:
        circuit = out[row["breaker"]]
        circuit.last = events.get(row["last"])
        circuit.last_trip = events.get(row["trip"])
    return list(out.values())


def unused(snaps: Iterable[BreakerSnapshot]) -> list[str]:
    """Configured in ``RESILIENCE["BREAKERS"]`` with no sign of use: not declared by code in this
    process, no call in the window, closed, and never recorded a transition (a typo in a name, or a
    dependency removed from the code); one query. A process only knows what it declared and what the
    shared store and history hold, so a breaker used only by code this process never imports, and
    idle since its last window, shows here too."""
    configured, declared = set(resilience_settings.configured_breakers()), breakers.declared()
    idle = {s.name for s in snaps if s.name in configured and s.name not in declared and not s.calls and s.state == "closed"}
    if not idle:
        return []
    recorded = set(CircuitEvent.objects.filter(breaker__in=idle).order_by().values_list("breaker", flat=True).distinct())
    return sorted(idle - recorded)


def store_health(snaps: Mapping[str, BreakerSnapshot]) -> list[StoreStatus]:
    """Breaker store, each retry budget built in this process, and the rate-limit store."""
    shared, local = "Redis (every worker)", "in-process (this worker)"
    store = breakers.store
    out = [StoreStatus("breaker state", shared if store.remote else local, store.healthy,
                       "" if store.healthy else "Redis unreachable: showing and deciding on local state")]  # fmt: skip
    for name, budget in sorted(budgets().items()):
        where = local if isinstance(budget, LocalRetryBudget) else shared
        detail = "" if budget.healthy else "Redis unreachable: the local budget decides"
        out.append(StoreStatus(f"retry budget {name}", where, budget.healthy, detail))
    if limiter().redis is None:
        out.append(StoreStatus("rate limits", local, True))
    else:  # the rate-limit store raises instead of keeping a flag: its guard breaker tells its health
        guard = snaps.get(REDIS_BREAKER)
        healthy = guard is None or guard.state == "closed"
        detail = "" if healthy else f"breaker {REDIS_BREAKER} is {guard.state if guard else ''}: each limit's fail mode decides"
        out.append(StoreStatus("rate limits", shared, healthy, detail))
    return out


def timelines(
    now_states: Mapping[str, str], span: Range, end: datetime | None = None
) -> tuple[list[BreakerTimeline], list[dict[str, Any]]]:
    """The timeline of each breaker in ``now_states`` (name → current state) over ``span`` up to
    ``end`` (now), and the axis ticks (``{"x", "label"}``): two queries for any number of breakers."""
    end = end or timezone.now()
    start = end - span.length
    names = list(now_states)
    inside: dict[str, list[timeline.Transition]] = defaultdict(list)
    query = (
        CircuitEvent.objects.filter(breaker__in=names, created_at__gte=start, created_at__lt=end)
        .order_by("breaker", "created_at", "id")
        .values_list("breaker", "created_at", "old_state", "new_state")
    )
    for name, at, old, new in query:
        inside[name].append(timeline.Transition(at.timestamp(), old, new))
    last_before = (
        CircuitEvent.objects.filter(breaker__in=names, created_at__lt=start).values("breaker").annotate(m=Max("id")).values("m")
    )
    before = {
        name: timeline.Transition(at.timestamp(), old, new)
        for name, at, old, new in CircuitEvent.objects.filter(id__in=Subquery(last_before)).values_list(
            "breaker", "created_at", "old_state", "new_state"
        )
    }
    t0, t1 = start.timestamp(), end.timestamp()
    out = []
    for name in names:
        events = inside.get(name, [])
        initial = timeline.state_at_start(before.get(name), events[0] if events else None, now_states[name])
        bars = [_bar(name, seg) for seg in timeline.segments(events, t0, t1, initial, span.buckets)]
        out.append(BreakerTimeline(name, bars, len(events)))
    offset = timezone.localtime(end).utcoffset() or timedelta(0)
    fmt = "%H:%M" if span.length <= timedelta(days=1) else "%a %d"
    axis = [
        {"x": tick.x, "label": _local(tick.at, fmt)}
        for tick in timeline.ticks(t0, t1, span.tick_every.total_seconds(), offset.total_seconds())
    ]
    return out, axis


def _local(at: float, fmt: str = "%a %d %b %H:%M") -> str:
    return datetime.fromtimestamp(at, tz=timezone.get_current_timezone()).strftime(fmt)


def _bar(name: str, seg: timeline.Segment) -> Bar:
    title = f"{name}: {seg.state.replace('_', ' ')} from {_local(seg.start)} to {_local(seg.end)}"
    if seg.transitions:
        title += f"; {seg.transitions} transition{'s' if seg.transitions != 1 else ''}"
    others = [s.replace("_", " ") for s in seg.states if s != seg.state]
    if others:
        title += f"; also {', '.join(others)}"
    return Bar(seg.x, seg.width, seg.state, title)


def timeline_context(now_states: Mapping[str, str], span: Range) -> dict[str, Any]:
    """What ``resilience/timeline.html`` needs: the timelines, their axis and the drawing's height."""
    lines, axis = timelines(now_states, span)
    axis = [tick for tick in axis if tick["x"] < timeline.WIDTH - 40]  # leave room for "now"
    return {
        "timelines": lines,
        "axis": axis,
        "span": span,
        "timeline_axis_y": len(lines) * 26,
        "timeline_height": len(lines) * 26 + 22,
    }
