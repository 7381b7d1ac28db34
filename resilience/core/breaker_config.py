"""Validated, immutable configuration of one circuit breaker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from resilience.core.validation import is_number, reject_unknown_keys
from resilience.exceptions import ConfigurationError

DEFAULTS: dict[str, Any] = {
    "failure_rate": 50,  # percent of failed calls in the window that opens the breaker
    "minimum_calls": 20,  # no decision before this many calls are in the window
    "window": 60,  # seconds (window_type "time") or calls (window_type "count")
    "window_type": "time",
    "open_for": 30,  # seconds open before the first probe
    "open_for_multiplier": 1.0,  # growth of open_for on each consecutive trip (1 = none)
    "open_for_max": None,  # ceiling of the grown open_for in seconds (None: one day)
    "half_open_calls": 3,  # probes admitted across all processes; all must succeed to close
    "slow_call": None,  # seconds from which a call counts as slow (None: off)
    "slow_rate": 100,  # percent of slow calls that opens the breaker
    "timeout": None,  # seconds a call may run before it fails with CallTimeout (None: off)
    "ignore": (),  # exception classes that are not the dependency's fault
}


MAX_NAME = 200  # characters of a breaker name


def validate_name(name: Any) -> str:
    """Breaker names come from code and settings: 1-200 printable characters. Anything else is a clear error."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        shown = repr(name)[:60]
        raise ConfigurationError(f"a breaker name must be 1-{MAX_NAME} printable characters, got {shown}")
    return name


def _number(path: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    if not is_number(value):
        raise ConfigurationError(f"{path} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigurationError(f"{path} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigurationError(f"{path} must be between {low:g} and {high:g}, got {value!r}")


@dataclass(frozen=True)
class BreakerConfig:
    """One breaker's settings; see ``DEFAULTS`` for meaning and default of each field."""

    failure_rate: float = DEFAULTS["failure_rate"]
    minimum_calls: int = DEFAULTS["minimum_calls"]
    window: int = DEFAULTS["window"]
    window_type: str = DEFAULTS["window_type"]
    open_for: float = DEFAULTS["open_for"]
    open_for_multiplier: float = DEFAULTS["open_for_multiplier"]
    open_for_max: float | None = DEFAULTS["open_for_max"]
    half_open_calls: int = DEFAULTS["half_open_calls"]
    slow_call: float | None = DEFAULTS["slow_call"]
    slow_rate: float = DEFAULTS["slow_rate"]
    timeout: float | None = DEFAULTS["timeout"]
    ignore: tuple[type[BaseException], ...] = DEFAULTS["ignore"]

    def __post_init__(self) -> None:
        self.validate("breaker")

    def validate(self, path: str) -> None:
        """Raise ``ConfigurationError`` naming ``path[key]`` for the first bad value."""
        p = lambda key: f'{path}["{key}"]'  # noqa: E731
        _number(p("failure_rate"), self.failure_rate, 1, 100)
        _number(p("minimum_calls"), self.minimum_calls, 1, 1_000_000, integer=True)
        if self.window_type not in ("time", "count"):
            raise ConfigurationError(f"{p('window_type')} must be 'time' or 'count', got {self.window_type!r}")
        _number(p("window"), self.window, 1, 3600 if self.window_type == "time" else 100_000, integer=True)
        if self.window_type == "count" and self.window < self.minimum_calls:  # it never holds enough calls to decide
            raise ConfigurationError(
                f"{p('window')} of {self.window} calls can never hold minimum_calls ({self.minimum_calls}): "
                "the breaker would never open; make the window at least minimum_calls"
            )
        _number(p("open_for"), self.open_for, 0.001, 86_400)
        _number(p("open_for_multiplier"), self.open_for_multiplier, 1, 100)
        if self.open_for_max is not None:
            _number(p("open_for_max"), self.open_for_max, self.open_for, 86_400)
        _number(p("half_open_calls"), self.half_open_calls, 1, 1000, integer=True)
        _number(p("slow_rate"), self.slow_rate, 1, 100)
        for key in ("slow_call", "timeout"):
            value = getattr(self, key)
            if value is not None:
                _number(p(key), value, 0.000_001, 86_400)
        if not isinstance(self.ignore, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in self.ignore
        ):
            raise ConfigurationError(f"{p('ignore')} must be a list of exception classes, got {self.ignore!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], path: str, base: BreakerConfig | None = None) -> BreakerConfig:
        """Build from a settings dict on top of ``base``; unknown keys are an error, not ignored."""
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"{path} must be a dict, got {type(values).__name__}")
        reject_unknown_keys(values, (f.name for f in fields(cls)), path)
        changes = dict(values)
        if "ignore" in changes and isinstance(changes["ignore"], (list, set)):
            changes["ignore"] = tuple(changes["ignore"])
        config = object.__new__(cls)  # validate once, with the settings path in messages
        merged = {f.name: getattr(base or DEFAULT_CONFIG, f.name) for f in fields(cls)} | changes
        for key, value in merged.items():
            object.__setattr__(config, key, value)
        config.validate(path)
        return config

    def with_overrides(self, path: str, **overrides: Any) -> BreakerConfig:
        """A copy with keyword overrides, validated under ``path``."""
        return BreakerConfig.from_mapping(overrides, path, base=self) if overrides else self

    def open_duration(self, trips: int) -> float:
        """Seconds to stay open after the ``trips``-th consecutive trip (1-based)."""
        ceiling = self.open_for_max if self.open_for_max is not None else 86_400.0
        grown = self.open_for * self.open_for_multiplier ** min(max(trips - 1, 0), 64)
        return min(grown, ceiling)


DEFAULT_CONFIG = BreakerConfig()
