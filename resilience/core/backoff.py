"""Backoff strategies: small callables ``(attempt, previous_delay, rng) -> seconds`` that compose.

``attempt`` is 1 for the wait after the first failure. The jittered strategies stay random at the
cap (no lock-step once capped), following the AWS Architecture Blog "Exponential Backoff And Jitter".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from resilience.core.validation import check_number, is_number


class Backoff(Protocol):
    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float: ...


def _exp(base: float, cap: float, attempt: int) -> float:
    return min(cap, base * 2 ** min(attempt - 1, 62))


@dataclass(frozen=True)
class Composable:
    """``a + b`` adds two strategies' delays; ``s.capped(x)`` bounds a composition."""

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        raise NotImplementedError

    def __post_init__(self) -> None:
        for key in ("base", "cap", "delay"):
            value = getattr(self, key, 0.0)
            check_number(f"{type(self).__name__}: {key}", value, 0, 86_400)  # seconds

    def __add__(self, other: Backoff) -> Sum:
        return Sum(self, other)

    def __radd__(self, other: Any) -> Composable:
        """``sum([a, b, c])`` starts from 0: adding a strategy to 0 is the strategy itself."""
        if is_number(other) and other == 0:
            return self
        return Sum(other, self)

    def capped(self, cap: float) -> Capped:
        return Capped(self, cap)


@dataclass(frozen=True)
class FullJitter(Composable):
    """random(0, min(cap, base·2ⁿ)): the least total work under contention (the default)."""

    base: float = 0.1
    cap: float = 10.0

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        return rng.uniform(0.0, _exp(self.base, self.cap, attempt))


@dataclass(frozen=True)
class EqualJitter(Composable):
    """Half the exponential delay, plus a random half."""

    base: float = 0.1
    cap: float = 10.0

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        half = _exp(self.base, self.cap, attempt) / 2
        return half + rng.uniform(0.0, half)


@dataclass(frozen=True)
class DecorrelatedJitter(Composable):
    """random(base, min(cap, previous·3)); the upper bound is capped before drawing, so it stays random."""

    base: float = 0.1
    cap: float = 10.0

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        high = min(self.cap, max(previous, self.base) * 3)
        return rng.uniform(min(self.base, high), high)


@dataclass(frozen=True)
class Exponential(Composable):
    """min(cap, base·2ⁿ) with no jitter: for comparison; contending clients retry in lock-step."""

    base: float = 0.1
    cap: float = 10.0

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        return _exp(self.base, self.cap, attempt)


@dataclass(frozen=True)
class Constant(Composable):
    delay: float = 0.1

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        return self.delay


@dataclass(frozen=True)
class Sum(Composable):
    first: Backoff
    second: Backoff

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        return self.first(attempt, previous, rng) + self.second(attempt, previous, rng)


@dataclass(frozen=True)
class Capped(Composable):
    inner: Backoff
    cap: float

    def __call__(self, attempt: int, previous: float, rng: random.Random) -> float:
        return min(self.cap, self.inner(attempt, previous, rng))


STRATEGIES = {
    "full_jitter": FullJitter,
    "equal_jitter": EqualJitter,
    "decorrelated_jitter": DecorrelatedJitter,
    "exponential": Exponential,
    "constant": Constant,
}
