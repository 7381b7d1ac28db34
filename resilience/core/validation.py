"""Shared checks for settings: each failure names the setting path, e.g. ``RESILIENCE["ROUTES"][2]``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resilience.exceptions import ConfigurationError


def reject_unknown_keys(values: Mapping[Any, Any], known: Iterable[str], path: str) -> None:
    """Raise when ``values`` has a key outside ``known``: a typo must not be silently ignored."""
    known = sorted(known)
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise ConfigurationError(f"{path} has unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
