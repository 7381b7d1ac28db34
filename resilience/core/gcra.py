"""GCRA (generic cell rate algorithm) for several limits decided together, all or nothing.

Each limit keeps one number per key, its theoretical arrival time (TAT). A request of cost ``c``
is allowed by a limit when ``max(tat, now) + c·T - τ <= now``, where ``T = period / rate`` is the
emission interval and ``τ = burst · T`` the tolerance. A request is admitted only if every limit
allows it; then every limit's TAT advances. A rejected request consumes nothing anywhere.
The Redis engine runs the same rule in ``storage/redis/lua/ratelimit.lua``.

``T`` and ``τ`` are whole microseconds (``Limit.wire``), as Redis's ``TIME`` is: both engines then
step on the same grid, and the script never formats a fraction. ``T`` is ``period / rate`` rounded
to the microsecond (a rate of 3/s is 3.000003/s); rates finer than one request per microsecond are
refused, and so is a tolerance over 366 days, which keeps every time exact in a double.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from resilience.core.validation import is_number
from resilience.exceptions import ConfigurationError

MICROS = 1_000_000
MAX_PERIOD = 366 * 86_400  # seconds
MAX_TOLERANCE = MAX_PERIOD * MICROS  # µs; with now + τ below 2^53, a double holds every time exactly


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per ``period`` seconds, up to ``burst`` at once; ``key`` is already safe for storage."""

    key: str
    rate: int
    period: float
    burst: int
    cost: int = 1
    policy: str = ""  # for headers and events: "ip", "tenant", "login:user", ...
    wire: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)  # (T, τ) in whole µs, set from the rest

    @classmethod
    def trusted(cls, key: str, rate: int, period: float, burst: int, cost: int, policy: str, wire: tuple[int, int]) -> Limit:
        """A limit from an already validated policy, without the checks (built for every request)."""
        limit = object.__new__(cls)
        limit.__dict__.update(key=key, rate=rate, period=period, burst=burst, cost=cost, policy=policy, wire=wire)
        return limit

    def __post_init__(self) -> None:
        name = f"rate limit {self.policy!r}:"
        if not is_number(self.rate) or not isinstance(self.rate, int) or self.rate < 1:
            raise ConfigurationError(f"{name} rate must be a whole number from 1, got {self.rate!r}")
        if not is_number(self.period) or not 0 < self.period <= MAX_PERIOD:
            raise ConfigurationError(f"{name} period must be seconds above 0, got {self.period!r}")
        if not is_number(self.burst) or not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigurationError(f"{name} burst must be a whole number from 1, got {self.burst!r}")
        if not is_number(self.cost) or not isinstance(self.cost, int) or not 0 <= self.cost <= self.burst:
            raise ConfigurationError(f"{name} cost must be 0 to burst ({self.burst}), got {self.cost!r}")
        object.__setattr__(self, "wire", micros(self.rate, self.period, self.burst, self.policy))

    @property
    def interval(self) -> float:
        """``T`` in seconds: ``period / rate`` on the microsecond grid."""
        return self.wire[0] / MICROS

    @property
    def tolerance(self) -> float:
        """``τ`` in seconds: ``burst · T``."""
        return self.wire[1] / MICROS


def micros(rate: int, period: float, burst: int, policy: str = "") -> tuple[int, int]:
    """(``T``, ``τ``) in whole microseconds for an already type-checked rate, period and burst."""
    interval = round(period * MICROS / rate)
    if interval < 1:
        raise ConfigurationError(f"rate limit {policy!r}: {rate} per {period:g} s is finer than one request per microsecond")
    if burst * interval > MAX_TOLERANCE:
        raise ConfigurationError(f"rate limit {policy!r}: burst {burst} at {rate} per {period:g} s lasts over 366 days")
    return interval, burst * interval


@dataclass(frozen=True)
class LimitState:
    """One limit's answer: may it pass, how many more would pass now, when to retry, when it is full again."""

    limit: Limit
    allowed: bool
    remaining: int
    retry_after: float  # 0.0 when allowed
    reset_after: float  # seconds until the limit is back to its full burst


class RateDecision:
    """One request's answer. Per-limit states (for headers and throttles' ``wait``) are worked out
    only when read: an admitted request through the middleware never needs them."""

    __slots__ = ("allowed", "_states", "_inputs")

    def __init__(
        self,
        allowed: bool,
        states: tuple[LimitState, ...] | None = None,
        inputs: tuple[list[Limit], list[float | None], float] | None = None,
    ) -> None:
        self.allowed = allowed
        self._states = states if states is not None or inputs is not None else ()
        self._inputs = inputs

    @property
    def states(self) -> tuple[LimitState, ...]:
        if self._states is None:
            assert self._inputs is not None
            limits, tats, now = self._inputs
            self._states = tuple(state(limit, tat, now)[0] for limit, tat in zip(limits, tats, strict=True))
        return self._states

    @property
    def retry_after(self) -> float:
        """Seconds until every rejecting limit would allow this request (0.0 when allowed)."""
        return max((s.retry_after for s in self.states if not s.allowed), default=0.0)

    @property
    def tightest(self) -> LimitState | None:
        """The limit closest to rejecting (for ``RateLimit`` headers)."""
        return min(self.states, key=lambda s: (s.allowed, s.remaining), default=None)


def state(limit: Limit, tat: float | None, now: float) -> tuple[LimitState, float]:
    """One limit's answer for a request at ``now`` given its stored TAT; also the TAT if admitted."""
    current = now if tat is None or tat < now else tat
    new_tat = current + limit.cost * limit.interval
    allow_at = new_tat - limit.tolerance
    if allow_at > now + 1e-9:
        remaining = max(int((now - (current - limit.tolerance)) / limit.interval + 1e-9), 0)
        return LimitState(limit, False, remaining, allow_at - now, current - now), new_tat
    remaining = int((now - allow_at) / limit.interval + 1e-9)
    return LimitState(limit, True, remaining, 0.0, new_tat - now), new_tat


def decide(limits: list[Limit], tats: list[float | None], now: float) -> tuple[RateDecision, list[float]]:
    """All-or-nothing decision over ``limits``; returns the decision and the TATs to store if admitted."""
    answers = [state(limit, tat, now) for limit, tat in zip(limits, tats, strict=True)]
    allowed = all(s.allowed for s, _ in answers)
    return RateDecision(allowed, tuple(s for s, _ in answers)), [new for _, new in answers]


def ttl(new_tat: float, now: float) -> int:
    """Seconds a stored TAT must live: until it no longer matters (then the key may vanish)."""
    return max(math.ceil(new_tat - now), 1)
