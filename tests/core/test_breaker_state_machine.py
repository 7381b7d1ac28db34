"""Property-based test: the shared state machine against a deliberately simple model."""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Outcome, State, StateRecord

CONFIG = BreakerConfig(open_for=10, open_for_multiplier=2, open_for_max=40, half_open_calls=3)
PERMIT_TTL = 5.0


class Model:
    """The rules in plain words: open for open_for*2^(trips-1) up to 40 s; then at most 3 probes;
    3 successes close, one failure re-opens; manual ops win; stale generations change nothing;
    each transition's generation is above the last one and at least the clock in microseconds."""

    def __init__(self) -> None:
        self.state, self.gen, self.until, self.trips, self.ok = "closed", 0, 0.0, 0, 0
        self.inflight: dict[str, float] = {}

    def move(self, now: float, state: str, until: float = 0.0) -> None:
        gen = max(self.gen + 1, int(now * 1_000_000))
        self.state, self.gen, self.until, self.ok, self.inflight = state, gen, until, 0, {}

    def open(self, now: float) -> None:
        self.trips += 1
        self.move(now, "open", now + min(10 * 2 ** (self.trips - 1), 40))


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.real = StateRecord()
        self.model = Model()
        self.counter = 0
        self.held: list[tuple[str, int]] = []  # permits handed out, with their generation
        self.gens: list[int] = []  # the generation after each step

    @rule(seconds=st.floats(min_value=0, max_value=50, allow_nan=False))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def acquire(self) -> None:
        self.counter += 1
        permit = f"p{self.counter}"
        d = self.real.acquire(self.now, CONFIG, permit, PERMIT_TTL)
        m = self.model
        expect_allowed = expect_probe = False
        if m.state in ("closed", "disabled"):
            expect_allowed = True
        elif m.state == "open" and self.now >= m.until or m.state == "half_open":
            if m.state == "open":
                m.move(self.now, "half_open")
            m.inflight = {p: e for p, e in m.inflight.items() if e > self.now}
            if len(m.inflight) + m.ok < 3:
                m.inflight[permit] = self.now + PERMIT_TTL
                expect_allowed = expect_probe = True
        assert (d.allowed, d.probe) == (expect_allowed, expect_probe)
        if d.probe:
            self.held.append((permit, d.view.gen))

    @rule(stale=st.booleans())
    def trip(self, stale: bool) -> None:
        gen = self.model.gen - 1 if stale else self.model.gen
        changed = self.real.trip(self.now, CONFIG, gen)
        if not stale and self.model.state == "closed":
            assert changed is State.CLOSED
            self.model.open(self.now)
        else:
            assert changed is None

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0), outcome=st.sampled_from(list(Outcome)))
    def release(self, index: int, outcome: Outcome) -> None:
        permit, gen = self.held.pop(index % len(self.held))
        changed = self.real.release(self.now, CONFIG, gen, permit, outcome)
        m = self.model
        held = m.inflight.pop(permit, None) is not None
        if gen != m.gen or m.state != "half_open" or not held:
            assert changed is None
            return
        if outcome is Outcome.FAILURE:
            m.open(self.now)
            assert changed is State.HALF_OPEN
        elif outcome is Outcome.SUCCESS:
            m.ok += 1
            if m.ok >= 3:
                m.trips = 0
                m.move(self.now, "closed")
                assert changed is State.HALF_OPEN
            else:
                assert changed is None
        else:
            assert changed is None

    @rule(op=st.sampled_from(["reset", "force_open", "disable"]))
    def manual(self, op: str) -> None:
        self.real.manual(self.now, op)
        if op == "reset":
            self.model.trips = 0
        self.model.move(self.now, {"reset": "closed", "force_open": "forced_open", "disable": "disabled"}[op])

    @invariant()
    def same_state(self) -> None:
        v, m = self.real.view, self.model
        assert (v.state.value, v.gen, v.trips) == (m.state, m.gen, m.trips)
        if m.state == "open":
            assert v.open_until == m.until

    @invariant()
    def generations_only_grow(self) -> None:
        self.gens.append(self.real.view.gen)
        assert self.gens == sorted(self.gens)

    @invariant()
    def never_more_probes_than_allowed(self) -> None:
        live = [e for e in self.real.permits.values() if e > self.now]
        assert len(live) + self.real.half_open_ok <= CONFIG.half_open_calls


BreakerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase
