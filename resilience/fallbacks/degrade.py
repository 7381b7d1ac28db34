"""Graceful degradation: non-critical features fall back to a default, critical ones fail clearly.

    @degradable("recommendations", breaker="recs", default=[])
    def recommendations(user): ...          # breaker open or dependency failing: [] and an event

Critical features need nothing: a ``CircuitOpenError`` that escapes a view becomes a 503 with
``Retry-After`` in ``ResilienceMiddleware``. In templates: ``{% degradable "name" %}…{% otherwise %}…
{% enddegradable %}``; in DRF: ``DegradableViewMixin``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from resilience.breakers.registry import breakers
from resilience.core.event import Event
from resilience.core.wrapping import decorate
from resilience.exceptions import ResilienceError
from resilience.observability.events import emit

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (ResilienceError, ConnectionError, TimeoutError, OSError, DatabaseError)
_OPEN = ("open", "forced_open")


def breaker_is_open(name: str | None) -> bool:
    """True when ``name`` is a known breaker that is open now (unknown names are closed)."""
    if not name:
        return False
    try:
        return breakers.get(name).state in _OPEN
    except ResilienceError:
        return False


def degraded(feature: str, reason: str) -> None:
    emit(Event("fallback", "degraded", feature, {"reason": reason}))


def degradable(
    feature: str, *, default: Any, breaker: str | None = None, on: tuple[type[BaseException], ...] = OUTAGE_ERRORS
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``default`` instead of the feature while ``breaker`` is open (not even called) or when it fails
    with an outage error (``on``); any other exception is a bug and propagates. ``breaker`` is
    declared here, so every process can list and force it before the feature is first called."""
    if breaker is not None:
        breakers.declare(breaker)

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if breaker_is_open(breaker):
            degraded(feature, "circuit_open")
            return default
        try:
            return fn(*args, **kwargs)
        except on as exc:
            degraded(feature, type(exc).__name__)
            return default

    async def acall(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if breaker_is_open(breaker):
            degraded(feature, "circuit_open")
            return default
        try:
            return await fn(*args, **kwargs)
        except on as exc:
            degraded(feature, type(exc).__name__)
            return default

    return lambda fn: decorate(fn, call, acall)


class _Degrade(Exception):
    """Raised after authentication when a view's breaker is open: answered with its degraded response."""


class DegradableViewMixin:
    """DRF view option: ``degrade_when = ["recs"]`` (breakers) and ``degraded_response = {...}``.
    While one of those breakers is open, or the view fails with an outage error, the client gets
    ``degraded_response`` (200, header ``X-Degraded: <feature>``) instead of an error — but only
    once authentication, permissions and throttles have passed: a failure before that is never
    turned into a degraded answer."""

    degrade_when: list[str] = []
    degraded_response: Any = None
    degraded_feature: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.degrade_when:  # listable and forcible from every process before the first request
            breakers.declare(name)

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._resilience_checked = True
        if self.degraded_response is not None and any(breaker_is_open(name) for name in self.degrade_when):
            raise _Degrade("circuit_open")

    def handle_exception(self, exc: Exception) -> Any:
        if getattr(self, "_resilience_checked", False) and self.degraded_response is not None:
            if isinstance(exc, (_Degrade, *OUTAGE_ERRORS)):
                from rest_framework.response import Response

                feature = self.degraded_feature or type(self).__name__
                degraded(feature, str(exc) if isinstance(exc, _Degrade) else type(exc).__name__)
                return Response(self.degraded_response, headers={"X-Degraded": feature})
        return super().handle_exception(exc)  # type: ignore[misc]
