"""``fallback(...)``: alternatives, stale-on-error values and a default for one function.

    @fallback("prices", alternatives=[prices_from_replica], stale_for=300, scope="tenant", default=[])
    def prices(): ...

Every step runs with the caller's own arguments and context — an alternative never sees a broader
identity than the caller's. Stale values are kept per tenant (``scope="tenant"``), per tenant and
user (``"user"``) or for everyone (``"public"``, only for data every caller may see); when the
scope cannot be established (no tenant, anonymous user) nothing stale is read or written.

Stale values are kept as JSON (sealed with an HMAC in Redis, see ``resilience.storage.redis.stale``) and
come back as JSON returns them: tuples as lists, dict keys as strings. A return value JSON cannot
hold is served fresh but never kept stale (one ``fallback not_storable`` event). Each fallback keeps
at most ``max_stale_keys`` distinct argument tuples (default ``RESILIENCE["FALLBACK_MAX_STALE_KEYS"]``,
else 1000): past that, calls with new arguments get no stale value, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resilience.conf import on_reload, resilience_settings
from resilience.core.fallback import NO_DEFAULT, FallbackChain, FallbackPolicy, StaleNotices
from resilience.core.ports import StaleStore
from resilience.core.wrapping import decorate
from resilience.observability.events import emit
from resilience.storage import stale_store as build_stale_store
from resilience.tenancy import scope_key

_store: list[StaleStore] = []


def stale_store() -> StaleStore:
    """The process's stale store (``resilience.storage.stale_store``), built on first use."""
    if not _store:
        _store.append(build_stale_store())
    return _store[0]


on_reload(_store.clear)


def default_max_stale_keys() -> int:
    """``RESILIENCE["FALLBACK_MAX_STALE_KEYS"]`` (validated by ``conf``)."""
    return int(resilience_settings.FALLBACK_MAX_STALE_KEYS)


def fallback(
    name: str,
    *,
    alternatives: list[Callable[..., Any]] | tuple[Callable[..., Any], ...] = (),
    default: Any = NO_DEFAULT,
    stale_for: float | None = None,
    scope: str = "tenant",
    on: tuple[type[BaseException], ...] = (Exception,),
    max_stale_keys: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a sync or async function with a fallback chain (see the module docstring)."""
    policy = FallbackPolicy(name, tuple(alternatives), default, stale_for, scope, on, max_stale_keys)
    notices = StaleNotices()  # one per decorated function: its events stay bounded across calls

    def chain() -> FallbackChain:
        if stale_for is None:
            return FallbackChain(policy, store=None, scope_key=scope_key, emit=emit)
        return FallbackChain(
            policy, store=stale_store(), scope_key=scope_key, emit=emit, max_stale_keys=default_max_stale_keys(), notices=notices
        )

    return lambda fn: decorate(fn, lambda f, *a, **k: chain().call(f, *a, **k), lambda f, *a, **k: chain().acall(f, *a, **k))
