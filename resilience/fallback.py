"""``fallback(...)``: alternatives, stale-on-error values and a default for one function.

    @fallback("prices", alternatives=[prices_from_replica], stale_for=300, scope="tenant", default=[])
    def prices(): ...

Every step runs with the caller's own arguments and context — an alternative never sees a broader
identity than the caller's. Stale values are kept per tenant (``scope="tenant"``), per tenant and
user (``"user"``) or for everyone (``"public"``, only for data every caller may see); when the
scope cannot be established (no tenant, anonymous user) nothing stale is read or written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conf import on_reload, resilience_settings
from .context import scope_key
from .core.fallback import NO_DEFAULT, FallbackChain, FallbackPolicy, StaleStore
from .core.wrapping import decorate
from .events import emit
from .storage.stale import MemoryStaleStore, RedisStaleStore

_store: list[StaleStore] = []


def stale_store() -> StaleStore:
    if not _store:
        if resilience_settings.REDIS is None:
            _store.append(MemoryStaleStore())
        else:
            from .redis_connection import connect

            client = connect(resilience_settings.REDIS, resilience_settings.REDIS_TIMEOUT)
            _store.append(RedisStaleStore(client, resilience_settings.KEY_PREFIX))
    return _store[0]


on_reload(_store.clear)


def fallback(
    name: str,
    *,
    alternatives: list[Callable[..., Any]] | tuple[Callable[..., Any], ...] = (),
    default: Any = NO_DEFAULT,
    stale_for: float | None = None,
    scope: str = "tenant",
    on: tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a sync or async function with a fallback chain (see the module docstring)."""
    policy = FallbackPolicy(name, tuple(alternatives), default, stale_for, scope, on)

    def chain() -> FallbackChain:
        return FallbackChain(policy, store=stale_store() if stale_for is not None else None, scope_key=scope_key, emit=emit)

    return lambda fn: decorate(fn, lambda f, *a, **k: chain().call(f, *a, **k), lambda f, *a, **k: chain().acall(f, *a, **k))
