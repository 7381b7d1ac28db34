"""``retry(policy)``: named retry policies from ``RESILIENCE["RETRY"]``, or an explicit ``RetryPolicy``.

Each name has built-in defaults and a classifier that only accepts what is safe to retry for that
dependency (see ``resilience.retries.classifiers``). Budgets are shared by all workers when Redis is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from resilience.conf import on_reload, resilience_settings
from resilience.core.backoff import STRATEGIES
from resilience.core.budget import LocalRetryBudget, RetryBudget
from resilience.core.retry import Retrying, RetryPolicy
from resilience.core.validation import reject_unknown_keys
from resilience.core.wrapping import decorate
from resilience.exceptions import ConfigurationError
from resilience.observability.events import emit
from resilience.retries.classifiers import classifier_for

__all__ = ["RetryPolicy", "retry", "policy"]

POLICY_DEFAULTS: dict[str, Any] = {
    "attempts": 3,
    "backoff": "full_jitter",
    "base": 0.1,  # seconds: the first backoff ceiling
    "cap": 10.0,  # seconds: the largest backoff
    "max_time": None,  # seconds for all attempts and waits together
    "attempt_timeout": None,  # seconds per attempt (adapters bound it by the deadline)
    "budget": {"ratio": 0.2, "floor_per_second": 1.0, "window": 10},  # None: no budget
    "breaker": None,  # name of a breaker: no retry while it is open
}
BUILTIN: dict[str, dict[str, Any]] = {
    "postgres": {"attempts": 3, "base": 0.05, "cap": 1.0},
    "postgres_transaction": {"attempts": 5, "base": 0.01, "cap": 0.5},
    "postgres_connect": {"attempts": 3, "base": 0.05, "cap": 1.0},
    "redis": {"attempts": 3, "base": 0.01, "cap": 0.2},
    "http": {"attempts": 3, "base": 0.1, "cap": 5.0},
    "aws": {"attempts": 3, "base": 0.1, "cap": 5.0},
}
_budgets: dict[str, RetryBudget] = {}
_lock = threading.Lock()


def _budget(name: str, spec: Mapping[str, Any], path: str) -> RetryBudget:
    if not isinstance(spec, Mapping) or set(spec) - {"ratio", "floor_per_second", "window"}:
        raise ConfigurationError(f'{path} must be a dict with "ratio", "floor_per_second" and "window", got {spec!r}')
    ratio, floor, window = spec.get("ratio", 0.2), spec.get("floor_per_second", 1.0), spec.get("window", 10)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ratio, floor, window)) or not (
        0 <= ratio <= 10 and 0 <= floor <= 10_000 and isinstance(window, int) and 1 <= window <= 3600
    ):
        raise ConfigurationError(f"{path}: ratio 0-10, floor_per_second 0-10000 and window 1-3600 (whole seconds), got {spec!r}")
    with _lock:
        budget = _budgets.get(name)
        if budget is None:
            from resilience.storage.redis.client import shared_client

            client = shared_client()
            if client is None:
                budget = LocalRetryBudget(ratio, floor, window)
            else:
                from resilience.storage.redis.budget import RedisRetryBudget

                budget = RedisRetryBudget(
                    client, name, prefix=resilience_settings.KEY_PREFIX, ratio=ratio, floor_per_second=floor, window=window
                )
            _budgets[name] = budget
        return budget


def policy(name: str, **overrides: Any) -> RetryPolicy:
    """The named policy from settings (over built-in defaults), with keyword overrides."""
    raw = resilience_settings.RETRY
    path = 'RESILIENCE["RETRY"]'
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{path} must be a dict of policy name -> settings, got {type(raw).__name__}")
    values = {**POLICY_DEFAULTS, **raw.get("default", {}), **BUILTIN.get(name, {}), **raw.get(name, {}), **overrides}
    where = f'{path}["{name}"]'
    reject_unknown_keys(values, POLICY_DEFAULTS, where)
    strategy = STRATEGIES.get(values["backoff"])
    if strategy is None:
        raise ConfigurationError(f'{where}["backoff"] must be one of {", ".join(STRATEGIES)}, got {values["backoff"]!r}')
    for key in ("base", "cap"):
        if isinstance(values[key], bool) or not isinstance(values[key], (int, float)) or not 0 <= values[key] <= 3600:
            raise ConfigurationError(f'{where}["{key}"] must be seconds between 0 and 3600, got {values[key]!r}')
    backoff = strategy(values["base"]) if strategy is STRATEGIES["constant"] else strategy(values["base"], values["cap"])
    budget = None if values["budget"] is None else _budget(name, values["budget"], f'{where}["budget"]')
    stop_if = _breaker_open(values["breaker"]) if values["breaker"] else None
    try:
        return RetryPolicy(
            name=name,
            attempts=values["attempts"],
            backoff=backoff,
            max_time=values["max_time"],
            attempt_timeout=values["attempt_timeout"],
            retry_on=classifier_for(name),
            budget=budget,
            stop_if=stop_if,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _breaker_open(name: str) -> Callable[[], bool]:
    from resilience.breakers.decorator import circuit_breaker

    handle = circuit_breaker(name)
    return lambda: handle.state in ("open", "forced_open")


class RetryHandle:
    """A policy resolved lazily (settings can change), usable as a decorator or via ``call``."""

    def __init__(self, spec: str | RetryPolicy, overrides: dict[str, Any]) -> None:
        if not isinstance(spec, (str, RetryPolicy)):
            raise ConfigurationError(f"retry() takes a policy name or a RetryPolicy, got {spec!r}")
        self.spec, self.overrides = spec, overrides
        self._retrying: Retrying | None = None
        self._version = -1

    @property
    def retrying(self) -> Retrying:
        if self._retrying is None or self._version != _version[0]:
            if isinstance(self.spec, RetryPolicy):
                chosen = replace(self.spec, **self.overrides) if self.overrides else self.spec
            else:
                chosen = policy(self.spec, **self.overrides)
            self._retrying, self._version = Retrying(chosen, emit=emit), _version[0]
        return self._retrying

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.retrying.call(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.retrying.acall(fn, *args, **kwargs)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return decorate(fn, self.call, self.acall)


def retry(spec: str | RetryPolicy, **overrides: Any) -> RetryHandle:
    """Retry with the named policy (``"postgres"``, ``"redis"``, ``"http"``, ``"aws"``, your own) or a ``RetryPolicy``."""
    if isinstance(spec, str) and not overrides:
        return named(spec)
    return RetryHandle(spec, overrides)


_named: dict[str, RetryHandle] = {}


def named(name: str) -> RetryHandle:
    """One shared handle per policy name: adapters call this per statement or command, and building
    a policy from settings costs ~15 us. Handles re-resolve by themselves when settings change."""
    handle = _named.get(name)
    if handle is None:
        handle = _named.setdefault(name, RetryHandle(name, {}))
    return handle


_version = [0]


def _reload() -> None:
    with _lock:
        _budgets.clear()
        _version[0] += 1


on_reload(_reload)
