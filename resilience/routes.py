"""Per-route policies: ``RESILIENCE["ROUTES"]`` entries and the ``@resilience_route`` view decorator.

A route is chosen by URL name or by path; the most specific match wins: a decorated view, then a
URL name, then an exact path, then the glob with the longest literal part, then the regex. Each
route says how long a request may take (``timeout``) and how many may run at once (``max_concurrency``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import get_resolver

from .core.bulkhead import Bulkhead
from .core.validation import reject_unknown_keys
from .exceptions import ConfigurationError

ROUTE_KEYS = {"name", "path", "path_regex", "timeout", "max_concurrency", "retry_after", "trust_timeout_header", "rate"}
VIEW_ATTRIBUTE = "resilience_route"
RESOLVE_CACHE_SIZE = 4096  # paths whose view-based route is remembered
_MISSING = object()


@dataclass
class Route:
    """One route's policy. ``timeout``: seconds (None: no deadline); ``max_concurrency``: None = no cap."""

    label: str = "default"
    rate: Any = None  # a per-client rate limit on this route (see resilience.ratelimits)
    timeout: float | None = None
    max_concurrency: int | None = None
    retry_after: int = 1
    trust_timeout_header: bool = True
    bulkhead: Bulkhead | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.bulkhead is None:
            self.bulkhead = Bulkhead(self.max_concurrency)


def _validated(entry: Any, path: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path} must be a dict, got {type(entry).__name__}")
    reject_unknown_keys(entry, ROUTE_KEYS, path)
    selectors = [k for k in ("name", "path", "path_regex") if k in entry]
    if len(selectors) != 1 or not isinstance(entry[selectors[0]], str) or not entry[selectors[0]]:
        raise ConfigurationError(f'{path} needs exactly one of "name", "path" or "path_regex" (a non-empty string)')
    timeout = entry.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86_400):
        raise ConfigurationError(f'{path}["timeout"] must be seconds above 0 (at most 86400) or None, got {timeout!r}')
    limit = entry.get("max_concurrency")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000):
        raise ConfigurationError(f'{path}["max_concurrency"] must be a whole number from 1 or None, got {limit!r}')
    retry_after = entry.get("retry_after", 1)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or not 0 <= retry_after <= 86_400:
        raise ConfigurationError(f'{path}["retry_after"] must be whole seconds from 0, got {retry_after!r}')
    if "path_regex" in entry:
        try:
            re.compile(entry["path_regex"])
        except re.error as exc:
            raise ConfigurationError(f'{path}["path_regex"] does not compile: {exc}') from None
    return entry


def route_from(values: dict[str, Any], label: str) -> Route:
    return Route(
        label=label,
        rate=values.get("rate"),
        timeout=values.get("timeout"),
        max_concurrency=values.get("max_concurrency"),
        retry_after=values.get("retry_after", 1),
        trust_timeout_header=values.get("trust_timeout_header", True),
    )


class RouteTable:
    """Built once from settings; ``match`` is called on every request."""

    def __init__(self, entries: Any) -> None:
        if not isinstance(entries, (list, tuple)):
            raise ConfigurationError(f'RESILIENCE["ROUTES"] must be a list of dicts, got {type(entries).__name__}')
        self.by_name: dict[str, Route] = {}
        self.exact: dict[str, Route] = {}
        self.patterns: list[tuple[float, re.Pattern[str], Route]] = []  # most specific first
        for i, raw in enumerate(entries):
            entry = _validated(raw, f'RESILIENCE["ROUTES"][{i}]')
            if "name" in entry:
                self.by_name[entry["name"]] = route_from(entry, f"name:{entry['name']}")
            elif "path" in entry and not any(c in entry["path"] for c in "*?["):
                self.exact[entry["path"]] = route_from(entry, f"path:{entry['path']}")
            elif "path" in entry:
                literal = len(entry["path"].replace("*", "").replace("?", ""))
                regex = re.compile(fnmatch.translate(entry["path"]))
                self.patterns.append((1_000 + literal, regex, route_from(entry, f"path:{entry['path']}")))
            else:
                self.patterns.append((0, re.compile(entry["path_regex"]), route_from(entry, f"regex:{entry['path_regex']}")))
        self.patterns.sort(key=lambda p: -p[0])
        self._resolved: dict[tuple[str | None, str], Route | None | object] = {}
        self._decorated_seen = 0

    def match(self, path: str, urlconf: str | None = None) -> Route | None:
        """The most specific route of ``path`` (``urlconf``: the request's own, if middleware set one)."""
        if self.by_name or _DECORATED:  # decorated views register when their URLconf is imported
            key = (urlconf, path)
            by_view = self._resolved.get(key, _MISSING)
            if by_view is _MISSING:
                by_view = self._match_view(path, urlconf)
                if len(self._resolved) >= RESOLVE_CACHE_SIZE or self._decorated_seen != len(_DECORATED):
                    self._resolved.clear()  # bounded (clients choose paths); stale once more views registered
                    self._decorated_seen = len(_DECORATED)
                self._resolved[key] = by_view
            if by_view is not None:
                return by_view  # type: ignore[return-value]
        exact = self.exact.get(path)
        if exact is not None:
            return exact
        for _, regex, route in self.patterns:
            if regex.match(path):
                return route
        return None

    def _match_view(self, path: str, urlconf: str | None) -> Route | None:
        """The route of the view ``path`` resolves to: its decorator's, else its URL name's."""
        try:
            match = get_resolver(urlconf).resolve(path)
        except Exception:  # noqa: BLE001 - a 404 path simply matches by path
            return None
        view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)  # Django / DRF
        decorated = getattr(match.func, VIEW_ATTRIBUTE, None) or getattr(view_class, VIEW_ATTRIBUTE, None)
        if decorated is not None:
            return decorated  # type: ignore[no-any-return]
        return self.by_name.get(match.view_name) or self.by_name.get(match.url_name or "")


_DECORATED: list[Route] = []


def resilience_route(
    *, timeout: float | None = None, max_concurrency: int | None = None, retry_after: int = 1, trust_timeout_header: bool = True
) -> Callable[[Any], Any]:
    """Give one view (function or class) its own route policy; beats every ``ROUTES`` entry."""
    values = _validated(
        {"name": "decorated", "timeout": timeout, "max_concurrency": max_concurrency, "retry_after": retry_after},
        "resilience_route()",
    )

    def decorate(view: Any) -> Any:
        route = route_from(
            {**values, "trust_timeout_header": trust_timeout_header}, f"view:{getattr(view, '__qualname__', view)}"
        )
        setattr(view, VIEW_ATTRIBUTE, route)
        _DECORATED.append(route)
        return view

    return decorate
