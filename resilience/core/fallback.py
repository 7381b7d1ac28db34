"""Fallback chains: primary → alternatives → a static default, each step run exactly as the caller
called it (same arguments, same context: never a broader identity), plus stale-on-error values.

The stale store is keyed by the caller's scope (tenant, tenant + user, or nothing for public
data); a call whose scope cannot be determined neither reads nor writes stale values, so one
tenant's entry can never be served to another.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..exceptions import ConfigurationError
from .event import Event, EventSink, discard

NO_DEFAULT = object()
SCOPES = ("tenant", "user", "public")


class StaleStore(Protocol):
    def get(self, key: str) -> tuple[float, Any] | None: ...

    def set(self, key: str, stored_at: float, value: Any, ttl: float) -> None: ...


@dataclass(frozen=True)
class FallbackPolicy:
    """``alternatives`` are tried in order after the primary; then a fresh-enough stale value
    (``stale_for`` seconds, None: never stale), then ``default`` (``NO_DEFAULT``: re-raise)."""

    name: str
    alternatives: tuple[Callable[..., Any], ...] = ()
    default: Any = NO_DEFAULT
    stale_for: float | None = None
    scope: str = "tenant"
    on: tuple[type[BaseException], ...] = (Exception,)  # which errors of a step move on to the next

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigurationError(f"fallback {self.name!r}: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.stale_for is not None and (
            isinstance(self.stale_for, bool)
            or not isinstance(self.stale_for, (int, float))
            or not 0 < self.stale_for <= 30 * 86_400
        ):
            raise ConfigurationError(f"fallback {self.name!r}: stale_for must be seconds above 0, got {self.stale_for!r}")


class FallbackChain:
    """Runs one policy. ``scope_key()`` names the caller's scope (None: unknown, no stale values)."""

    def __init__(
        self,
        policy: FallbackPolicy,
        *,
        store: StaleStore | None,
        scope_key: Callable[[str], str | None],
        emit: EventSink = discard,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy, self.store, self.scope_key, self.emit, self.clock = policy, store, scope_key, emit, clock

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        scope = self.scope_key(self.policy.scope)
        if scope is None or self.store is None or self.policy.stale_for is None:
            return None
        return f"{self.policy.name}|{scope}|{args!r}|{sorted(kwargs.items())!r}"

    def _remember(self, key: str | None, value: Any) -> None:
        if key is not None and self.store is not None and self.policy.stale_for is not None:
            self.store.set(key, self.clock(), value, self.policy.stale_for)

    def _after_failure(self, key: str | None, error: BaseException) -> Any:
        """No step answered: a stale value if fresh enough, else the default, else the error."""
        if key is not None and self.store is not None and self.policy.stale_for is not None:
            found = self.store.get(key)
            if found is not None and self.clock() - found[0] <= self.policy.stale_for:
                self.emit(Event("fallback", "stale", self.policy.name, {"age": round(self.clock() - found[0], 3)}))
                return found[1]
        if self.policy.default is NO_DEFAULT:
            self.emit(Event("fallback", "exhausted", self.policy.name, {"error": type(error).__name__}))
            raise error
        self.emit(Event("fallback", "default", self.policy.name, {"error": type(error).__name__}))
        return self.policy.default

    def _answered(self, key: str | None, step: int, error: BaseException | None, value: Any) -> Any:
        """A step answered: report a fallback step, keep the value for stale use, hand it back."""
        if step:
            self.emit(Event("fallback", "alternative", self.policy.name, {"step": step, "error": type(error).__name__}))
        self._remember(key, value)
        return value

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        key = self._key(args, kwargs)
        error: BaseException | None = None
        for step, candidate in enumerate((fn, *self.policy.alternatives)):
            try:
                value = candidate(*args, **kwargs)
            except self.policy.on as exc:
                error = exc
                continue
            return self._answered(key, step, error, value)
        assert error is not None
        return self._after_failure(key, error)

    async def acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        key = self._key(args, kwargs)
        error: BaseException | None = None
        for step, candidate in enumerate((fn, *self.policy.alternatives)):
            try:
                value = await candidate(*args, **kwargs)
            except self.policy.on as exc:
                error = exc
                continue
            return self._answered(key, step, error, value)
        assert error is not None
        return self._after_failure(key, error)
