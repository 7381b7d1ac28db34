"""The breaker's shared state machine: closed → open → half_open → closed, plus manual states.

This is the reference semantics. ``storage.memory`` runs it under a lock; the Redis store runs
the same rules in Lua (``storage/redis/lua/``), and the tests hold the two to the same behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from resilience.core.breaker_config import BreakerConfig


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCEL = "cancel"  # cancelled, ignored or abandoned: releases a probe permit, counts nothing


MANUAL_OPS = {"reset": State.CLOSED, "force_open": State.FORCED_OPEN, "disable": State.DISABLED}


def next_generation(previous: int, now: float) -> int:
    """The generation after ``previous``: greater than it, and at least the store clock in microseconds.

    A generation never repeats, even when the state is lost (Redis restarted empty, a key evicted or
    deleted): a record created afresh starts at the clock, above every generation handed out before,
    so no window, call or permit of the lost state can match the new one. (Repeating one would take a
    clock set back and a transition in the very same microsecond.) The Lua scripts use the same rule.
    """
    return max(previous + 1, int(now * 1_000_000))


@dataclass(frozen=True)
class StateView:
    """What a process needs to decide locally: state, its generation, and when it ends."""

    state: State = State.CLOSED
    gen: int = 0
    open_until: float = 0.0  # store-clock seconds; meaningful when open
    since: float = 0.0  # store-clock seconds of the last transition
    trips: int = 0  # consecutive trips without a successful close


@dataclass(frozen=True)
class Decision:
    """Answer to "may a call run now?" when the breaker is not plainly closed."""

    allowed: bool
    probe: bool  # the call holds a half-open permit and must report its outcome
    retry_after: float | None  # for rejections; None: open until reset by hand
    view: StateView
    changed_from: State | None = None  # set when deciding caused a transition


@dataclass
class StateRecord:
    """Mutable shared state of one breaker, as the memory store keeps it."""

    view: StateView = field(default_factory=StateView)
    half_open_ok: int = 0
    permits: dict[str, float] = field(default_factory=dict)  # permit id -> expiry

    @classmethod
    def fresh(cls, now: float, after: int = -1) -> StateRecord:
        """A closed record for a breaker the store has no state for, in a generation never seen before."""
        return cls(StateView(gen=next_generation(after, now)))

    def _move(self, now: float, state: State, *, open_until: float = 0.0, trips: int | None = None) -> State:
        old = self.view
        self.view = StateView(state, next_generation(old.gen, now), open_until, now, old.trips if trips is None else trips)
        self.half_open_ok = 0
        self.permits.clear()
        return old.state

    def _open(self, now: float, config: BreakerConfig) -> State:
        trips = self.view.trips + 1
        return self._move(now, State.OPEN, open_until=now + config.open_duration(trips), trips=trips)

    def acquire(self, now: float, config: BreakerConfig, permit_id: str, permit_ttl: float) -> Decision:
        """Admit, probe or reject a call; moves open → half_open once ``open_until`` has passed."""
        changed: State | None = None
        state = self.view.state
        if state in (State.CLOSED, State.DISABLED):
            return Decision(True, False, None, self.view)
        if state is State.FORCED_OPEN:
            return Decision(False, False, None, self.view)
        if state is State.OPEN:
            if now < self.view.open_until:
                return Decision(False, False, self.view.open_until - now, self.view)
            changed = self._move(now, State.HALF_OPEN)
        self.permits = {p: exp for p, exp in self.permits.items() if exp > now}
        if len(self.permits) + self.half_open_ok < config.half_open_calls:
            self.permits[permit_id] = now + permit_ttl
            return Decision(True, True, None, self.view, changed)
        soonest = min(self.permits.values(), default=now + 1.0)
        return Decision(False, False, max(soonest - now, 0.001), self.view, changed)

    def trip(self, now: float, config: BreakerConfig, expected_gen: int) -> State | None:
        """Open a closed breaker whose window crossed a threshold; stale generations change nothing."""
        if self.view.gen != expected_gen or self.view.state is not State.CLOSED:
            return None
        return self._open(now, config)

    def release(self, now: float, config: BreakerConfig, gen: int, permit_id: str, outcome: Outcome) -> State | None:
        """Report a probe's outcome: all probes succeeding closes, any failure re-opens."""
        held = self.permits.pop(permit_id, None) is not None
        if self.view.gen != gen or self.view.state is not State.HALF_OPEN or not held:
            return None
        if outcome is Outcome.FAILURE:
            return self._open(now, config)
        if outcome is Outcome.SUCCESS:
            self.half_open_ok += 1
            if self.half_open_ok >= config.half_open_calls:
                return self._move(now, State.CLOSED, trips=0)
        return None

    def manual(self, now: float, op: str) -> State:
        """Reset, force open or disable, whatever the current state."""
        target = MANUAL_OPS[op]
        return self._move(now, target, trips=0 if target is State.CLOSED else None)
