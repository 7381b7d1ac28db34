"""A state timeline per breaker, like Grafana's: from its transitions to bars over a time range.

The range is cut into a fixed number of buckets, so any number of transitions draws as at most
that many bars per breaker (10,000 events over 50 breakers stay 96 bars each at most). A bucket
shows the most severe state the breaker held in it (an open breaker that flapped for a second is
not hidden by the closed minutes around it) and counts the transitions it holds; neighbouring
buckets of the same state merge into one segment. Pure: no Django, no database; times are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Most severe wins in a bucket: an automatic trip says more than a hand-forced one, any opening more
# than probing, and "disabled" (no protection at all) more than "closed". Unknown states rank highest.
SEVERITY = {"closed": 0, "disabled": 1, "half_open": 2, "forced_open": 3, "open": 4}
WIDTH = 1000.0  # SVG user units of the whole range


@dataclass(frozen=True)
class Transition:
    at: float  # seconds since the epoch
    old_state: str
    new_state: str


@dataclass(frozen=True)
class Segment:
    """``state`` from ``start`` to ``end``; ``x`` and ``width`` in SVG user units of ``WIDTH``."""

    start: float
    end: float
    state: str
    transitions: int  # transitions inside the segment
    states: tuple[str, ...]  # every state held inside it, most severe first
    x: float
    width: float


@dataclass(frozen=True)
class Tick:
    at: float
    x: float


def severity(state: str) -> int:
    return SEVERITY.get(state, len(SEVERITY))


def state_at_start(before: Transition | None, first_inside: Transition | None, now_state: str) -> str:
    """The state at the start of the range: the last transition before it says; else the first one
    inside it (its ``old_state``); else nothing happened, and the state is today's."""
    if before is not None:
        return before.new_state
    if first_inside is not None:
        return first_inside.old_state
    return now_state


def segments(
    transitions: Iterable[Transition], start: float, end: float, initial: str, buckets: int = 96, width: float = WIDTH
) -> list[Segment]:
    """Bars over ``[start, end)`` from ``transitions`` sorted by time (those outside are ignored),
    starting in ``initial``. At most ``buckets`` segments; O(transitions + buckets)."""
    if end <= start or buckets < 1:
        raise ValueError("a timeline needs start < end and at least one bucket")
    step = (end - start) / buckets
    scale = width / (end - start)
    pending = iter(t for t in transitions if start <= t.at < end)
    upcoming = next(pending, None)
    current = initial
    out: list[Segment] = []
    run: tuple[int, str, int, set[str]] | None = None  # (first bucket, state, transitions, states held)
    for i in range(buckets):
        bucket_end = end if i == buckets - 1 else start + (i + 1) * step
        held, count = {current}, 0
        while upcoming is not None and upcoming.at < bucket_end:
            current = upcoming.new_state
            held.add(current)
            count += 1
            upcoming = next(pending, None)
        shown = max(held, key=severity)
        if run is not None and run[1] == shown:
            run = (run[0], shown, run[2] + count, run[3] | held)
            continue
        if run is not None:
            out.append(_segment(run, i, start, step, end, scale))
        run = (i, shown, count, held)
    assert run is not None
    out.append(_segment(run, buckets, start, step, end, scale))
    return out


def _segment(run: tuple[int, str, int, set[str]], stop: int, start: float, step: float, end: float, scale: float) -> Segment:
    first, state, count, held = run
    seg_start = start + first * step
    seg_end = min(start + stop * step, end)
    held_states = tuple(sorted(held, key=lambda s: (-severity(s), s)))
    return Segment(
        seg_start,
        seg_end,
        state,
        count,
        held_states,
        round((seg_start - start) * scale, 2),
        round((seg_end - seg_start) * scale, 2),
    )


def ticks(start: float, end: float, every: float, offset: float = 0.0, width: float = WIDTH) -> list[Tick]:
    """Axis marks at whole multiples of ``every`` seconds in local time (``offset``: seconds east of UTC)."""
    first = ((start + offset) // every + 1) * every - offset
    count = int((end - first) // every) + 1
    return [
        Tick(at, round((at - start) * width / (end - start), 2)) for at in (first + k * every for k in range(count)) if at < end
    ]
