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
from resilience.core.ports import RetryBudget
from resilience.core.retry import Retrying, RetryPolicy
from resilience.core.validation import check_number, reject_unknown_keys
from resilience.core.wrapping import decorate
from resilience.exceptions import ConfigurationError
from resilience.observability.events import emit
from resilience.retries.classifiers import classifier_for
from resilience.storage import retry_budget

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


def budget_values(spec: Any, path: str) -> tuple[float, float, int]:
    """``(ratio, floor_per_second, window)`` of a policy's ``budget`` setting, each within its bounds."""
    if not isinstance(spec, Mapping) or set(spec) - {"ratio", "floor_per_second", "window"}:
        raise ConfigurationError(f'{path} must be a dict with "ratio", "floor_per_second" and "window", got {spec!r}')
    ratio, floor, window = spec.get("ratio", 0.2), spec.get("floor_per_second", 1.0), spec.get("window", 10)
    check_number(f'{path}["ratio"]', ratio, 0, 10)
    check_number(f'{path}["floor_per_second"]', floor, 0, 10_000)
    check_number(f'{path}["window"]', window, 1, 3600, integer=True)  # whole seconds
    return ratio, floor, window


def _budget(name: str, spec: Mapping[str, Any], path: str) -> RetryBudget:
    ratio, floor, window = budget_values(spec, path)
    with _lock:
        budget = _budgets.get(name)
        if budget is None:
            budget = _budgets[name] = retry_budget(name, ratio, floor, window)
        return budget


def budgets() -> dict[str, RetryBudget]:
    """The retry budgets this process has built so far, by policy name (the admin shows their health)."""
    with _lock:
        return dict(_budgets)


def _checked(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` (one policy's settings over the defaults) when every one is valid; builds nothing."""
    reject_unknown_keys(values, POLICY_DEFAULTS, where)
    if not isinstance(values["backoff"], str) or values["backoff"] not in STRATEGIES:
        raise ConfigurationError(f'{where}["backoff"] must be one of {", ".join(STRATEGIES)}, got {values["backoff"]!r}')
    check_number(f'{where}["attempts"]', values["attempts"], 1, 100, integer=True)
    for key in ("base", "cap"):  # seconds
        check_number(f'{where}["{key}"]', values[key], 0, 3600)
    for key in ("max_time", "attempt_timeout"):  # seconds, or None: no bound
        if values[key] is not None:
            check_number(f'{where}["{key}"]', values[key], 0, 86_400, low_open=True)
    if values["budget"] is not None:
        budget_values(values["budget"], f'{where}["budget"]')
    if values["breaker"] is not None and (not isinstance(values["breaker"], str) or not values["breaker"]):
        raise ConfigurationError(f'{where}["breaker"] must be a breaker name or None, got {values["breaker"]!r}')
    return values


def parse_retry(value: Any, path: str) -> dict[str, dict[str, Any]]:
    """``RESILIENCE["RETRY"]`` (its ``PARSERS`` entry): the checked settings of every named policy —
    the built-in ones, those configured, and ``"default"`` (what any other name gets)."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{path} must be a dict of policy name -> settings, got {type(value).__name__}")
    for name, entry in value.items():
        if not isinstance(name, str) or not isinstance(entry, Mapping):
            raise ConfigurationError(f"{path} must map policy names to dicts of settings, got {name!r}: {entry!r}")
    default = value.get("default", {})
    return {
        name: _checked({**POLICY_DEFAULTS, **default, **BUILTIN.get(name, {}), **value.get(name, {})}, f'{path}["{name}"]')
        for name in dict.fromkeys(["default", *BUILTIN, *value])
    }


def policy(name: str, **overrides: Any) -> RetryPolicy:
    """The named policy from settings (over built-in defaults), with keyword overrides."""
    named = resilience_settings.RETRY
    where = f'RESILIENCE["RETRY"]["{name}"]'
    values = named.get(name) or named["default"]
    if overrides:
        values = _checked({**values, **overrides}, where)
    strategy = STRATEGIES[values["backoff"]]
    backoff = strategy(values["base"]) if strategy is STRATEGIES["constant"] else strategy(values["base"], values["cap"])
    budget = None if values["budget"] is None else _budget(name, values["budget"], f'{where}["budget"]')
    stop_if = _breaker_open(values["breaker"]) if values["breaker"] else None
    return RetryPolicy(  # already checked: RetryPolicy's own checks pass
        name=name,
        attempts=values["attempts"],
        backoff=backoff,
        max_time=values["max_time"],
        attempt_timeout=values["attempt_timeout"],
        retry_on=classifier_for(name),
        budget=budget,
        stop_if=stop_if,
    )


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
