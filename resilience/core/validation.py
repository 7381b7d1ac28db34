"""Shared checks for settings: each failure names the setting path, e.g. ``RESILIENCE["ROUTES"][2]``."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from resilience.exceptions import ConfigurationError


def reject_unknown_keys(values: Mapping[Any, Any], known: Iterable[str], path: str) -> None:
    """Raise when ``values`` has a key outside ``known``: a typo must not be silently ignored."""
    known = sorted(known)
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise ConfigurationError(f"{path} has unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


def over_defaults(value: Any, defaults: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A settings dict (None: empty) over its ``defaults``: not a dict, or an unknown key, is an error naming ``path``."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must be a dict, got {type(value).__name__}")
    reject_unknown_keys(value, defaults, path)
    return {**defaults, **value}


def is_number(value: Any) -> TypeGuard[float]:
    """A real int or float, not NaN, not a bool (``True`` is an int to Python, never a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def check_number(path: str, value: Any, low: float, high: float, *, integer: bool = False, low_open: bool = False) -> None:
    """Raise unless ``value`` is a number (a whole one when ``integer``) in ``[low, high]``
    (``(low, high]`` when ``low_open``); the message names ``path`` and the bounds."""
    fits = is_number(value) and (isinstance(value, int) or not integer)
    if not (fits and (value > low if low_open else value >= low) and value <= high):
        kind = "a whole number" if integer else "a number"
        bounds = f"above {_shown(low)} and at most {_shown(high)}" if low_open else f"from {_shown(low)} to {_shown(high)}"
        raise ConfigurationError(f"{path} must be {kind} {bounds}, got {value!r}")


def _shown(bound: float) -> str:
    """A bound as people write it: ``1000000`` and ``0.5``, never ``1e+06``."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def import_path(value: Any, path: str) -> Any:
    """The object the dotted path ``value`` names (``"package.module.name"``); ConfigurationError
    naming ``path`` and the cause's type when it does not import (a setting's fault, whatever it raises)."""
    if not isinstance(value, str) or "." not in value.strip("."):
        raise ConfigurationError(f"{path} must be a dotted path, got {str(value)[:100]!r}")
    module, _, name = value.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the setting's fault
        raise ConfigurationError(f"{path} names {value[:100]!r}, which cannot be imported ({type(exc).__name__})") from exc
