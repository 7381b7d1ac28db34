"""The small contract every breaker store fulfils (memory and Redis)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_state import Decision, Outcome, State, StateView
from resilience.core.windows import WindowSnapshot

Change = tuple[State | None, StateView]  # (previous state if a transition happened, current view)


class BreakerStore(ABC):
    """Shared breaker state. ``view`` is local and free; everything else may do I/O."""

    remote = False  # True when operations other than ``view`` leave the process

    @abstractmethod
    def view(self, name: str) -> StateView:
        """The last known state, from memory; never blocks."""

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
