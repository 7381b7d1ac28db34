"""Fallback chains: primary → alternatives → a static default, each step run exactly as the caller
called it (same arguments, same context: never a broader identity), plus stale-on-error values.

The stale store is keyed by the caller's scope (tenant, tenant + user, or nothing for public
data); a call whose scope cannot be determined neither reads nor writes stale values, so one
tenant's entry can never be served to another.

Stale values are what JSON can hold, and come back as JSON returns them (tuples as lists, dict keys
as strings). A value JSON cannot hold is served fresh but never kept: one ``not_storable`` event
says so. Each fallback keeps at most ``max_stale_keys`` distinct argument tuples (all scopes
together); past that, new ones are not kept (a ``stale_full`` event, at most one a minute).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from resilience.core.event import Event, EventSink, discard
from resilience.core.ports import StaleStore
from resilience.core.validation import check_number, is_number
from resilience.exceptions import ConfigurationError

NO_DEFAULT = object()
SCOPES = ("tenant", "user", "public")
DEFAULT_MAX_STALE_KEYS = 1000  # distinct argument tuples one fallback keeps; ~0.2 kB each in Redis for small values
MAX_STALE_KEYS = 1_000_000
FULL_REPORT_INTERVAL = 60.0  # seconds between two ``stale_full`` events of one fallback
UNSTORABLE = (TypeError, ValueError, RecursionError)  # what json raises for what it cannot hold


class StaleNotices:
    """What one fallback has reported about its stale values, shared by all its chains so a flood
    or an odd return type costs a bounded number of events. A race can only repeat a report."""

    def __init__(self) -> None:
        self.unstorable_reported = False
        self.full_reported_at: float | None = None
        self.refused = 0  # new keys refused since the last ``stale_full`` event


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
    max_stale_keys: int | None = None  # None: the chain's (from settings, else DEFAULT_MAX_STALE_KEYS)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigurationError(f"fallback {self.name!r}: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.stale_for is not None and not (is_number(self.stale_for) and 0 < self.stale_for <= 30 * 86_400):
            raise ConfigurationError(f"fallback {self.name!r}: stale_for must be seconds above 0, got {self.stale_for!r}")
        if self.max_stale_keys is not None:
            check_number(f"fallback {self.name!r}: max_stale_keys", self.max_stale_keys, 1, MAX_STALE_KEYS, integer=True)


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
        max_stale_keys: int = DEFAULT_MAX_STALE_KEYS,
        notices: StaleNotices | None = None,
    ) -> None:
        self.policy, self.store, self.scope_key, self.emit, self.clock = policy, store, scope_key, emit, clock
        self.max_stale_keys = policy.max_stale_keys or max_stale_keys
        self.notices = notices or StaleNotices()

    def _key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        scope = self.scope_key(self.policy.scope)
        if scope is None or self.store is None or self.policy.stale_for is None:
            return None
        return f"{self.policy.name}|{scope}|{args!r}|{sorted(kwargs.items())!r}"

    def _remember(self, key: str | None, value: Any) -> None:
        if key is None or self.store is None or self.policy.stale_for is None:
            return
        try:
            kept = self.store.set(self.policy.name, key, self.clock(), value, self.policy.stale_for, self.max_stale_keys)
        except UNSTORABLE as exc:
            if not self.notices.unstorable_reported:
                self.notices.unstorable_reported = True
                fields = {"type": type(value).__name__, "error": str(exc)[:120]}
                self.emit(Event("fallback", "not_storable", self.policy.name, fields))
            return
        if not kept:
            self._refused()

    def _refused(self) -> None:
        """A new key past the cap: counted, and reported at most once per ``FULL_REPORT_INTERVAL``."""
        notices, now = self.notices, self.clock()
        notices.refused += 1
        if notices.full_reported_at is None or now - notices.full_reported_at >= FULL_REPORT_INTERVAL:
            fields = {"max_keys": self.max_stale_keys, "refused": notices.refused}
            notices.full_reported_at, notices.refused = now, 0
            self.emit(Event("fallback", "stale_full", self.policy.name, fields))

    def _after_failure(self, key: str | None, error: BaseException) -> Any:
        """No step answered: a stale value if fresh enough, else the default, else the error."""
        if key is not None and self.store is not None and self.policy.stale_for is not None:
            found = self.store.get(self.policy.name, key)
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
            if inspect.isawaitable(value):  # nothing here could await it: never pass one off as the answer
                getattr(value, "close", lambda: None)()
                name = getattr(candidate, "__qualname__", repr(candidate))
                raise ConfigurationError(f"fallback {self.policy.name!r}: {name} is async; the function it stands in for is not")
            return self._answered(key, step, error, value)
        assert error is not None
        return self._after_failure(key, error)

    async def acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        key = self._key(args, kwargs)
        error: BaseException | None = None
        for step, candidate in enumerate((fn, *self.policy.alternatives)):
            try:
                value = candidate(*args, **kwargs)
                if inspect.isawaitable(value):  # a plain function may stand in for a coroutine (it runs on the loop)
                    value = await value
            except self.policy.on as exc:
                error = exc
                continue
            return self._answered(key, step, error, value)
        assert error is not None
        return self._after_failure(key, error)
