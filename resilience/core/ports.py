"""The contract of every store kind: breaker state, retry budgets, stale values and rate limits.

Each kind has a memory implementation (one process) and a Redis one (every worker);
``resilience.storage`` is the one place that picks between them. ``healthy`` is part of every
contract but the rate limiter's: False while the store cannot reach its shared state (it then
answers from local state). Rate-limit stores raise instead, and the limiter applies its fail mode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Decision, Outcome, State, StateView
from resilience.core.gcra import Limit, RateDecision
from resilience.core.windows import WindowSnapshot

Change = tuple[State | None, StateView]  # (previous state if a transition happened, current view)


class BreakerStore(ABC):
    """Shared breaker state. ``view`` is local and free; everything else may do I/O."""

    remote = False  # True when operations other than ``view`` leave the process

    @property
    def healthy(self) -> bool:
        """False while shared state is unreachable (operations then run on local state)."""
        return True

    @abstractmethod
    def view(self, name: str) -> StateView:
        """The last known state, from memory; never blocks."""

    def view_reader(self) -> Callable[[str], StateView]:
        """What a breaker calls for ``view`` on every call: ``view`` itself, or a store's cheaper
        equivalent (the Redis store's local copy, one frame fewer on the closed path)."""
        return self.view

    @abstractmethod
    def now(self) -> float:
        """The store's clock (seconds), against which ``open_until`` is measured."""

    @abstractmethod
    def acquire(self, name: str, config: BreakerConfig, permit_id: str, permit_ttl: float) -> Decision:
        """Admit, probe or reject a call while the breaker is not closed."""

    @abstractmethod
    def trip(self, name: str, config: BreakerConfig, expected_gen: int) -> Change:
        """Open the breaker if it is still closed in generation ``expected_gen``."""

    @abstractmethod
    def release(self, name: str, config: BreakerConfig, gen: int, permit_id: str, outcome: Outcome) -> Change:
        """Return a half-open probe permit with the probe's outcome."""

    @abstractmethod
    def manual(self, name: str, op: str) -> Change:
        """``reset``, ``force_open`` or ``disable`` the breaker everywhere."""

    def register(self, name: str) -> None:
        """Make the name known to other processes (for listings)."""

    def names(self) -> set[str]:
        """Every breaker name this store knows of."""
        return set()

    def shared_stats(self, name: str) -> WindowSnapshot | None:
        """Window counts summed over every live process, when the store can tell."""
        return None

    def refresh(self) -> None:
        """Re-read shared state now (management commands, tests)."""

    def close(self) -> None:
        """Release connections and background threads."""


class RetryBudget(Protocol):
    """Retries may be at most a ratio of calls plus a floor over a sliding window."""

    @property
    def healthy(self) -> bool:
        """False while a shared budget is unreachable (the local budget decides meanwhile)."""
        ...

    def record_call(self) -> None:
        """Count one call (a first attempt)."""
        ...

    def try_retry(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        ...


class StaleStore(Protocol):
    """Last good values of fallbacks. ``group`` is the fallback's name. ``set`` raises ``TypeError``,
    ``ValueError`` or ``RecursionError`` for a value JSON cannot hold, returns False when ``group``
    already holds ``max_keys`` other live keys, and swallows store trouble; ``get`` returns None for
    anything missing, expired or not verifiable."""

    @property
    def healthy(self) -> bool:
        """False while stored values are unreachable (reads miss, writes are lost)."""
        ...

    def get(self, group: str, key: str) -> tuple[float, Any] | None:
        """``(stored_at, value)``, or None."""
        ...

    def set(self, group: str, key: str, stored_at: float, value: Any, ttl: float, max_keys: int) -> bool:
        """Keep ``value`` for ``ttl`` seconds; False when refused at the cap."""
        ...


class RateLimitStore(Protocol):
    """GCRA state (``core.gcra``) for already normalised, hashed keys. Store errors propagate."""

    def hit(self, limits: list[Limit]) -> RateDecision:
        """Decide every limit of one request at once, all or nothing."""
        ...

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        """Count one failure against ``limit`` and push its TAT forward; returns the failure count."""
        ...

    def forget(self, *keys: str) -> None:
        """Drop the state of ``keys``."""
        ...
