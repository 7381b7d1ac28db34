"""Per-route policies: ``RESILIENCE["ROUTES"]`` entries and the ``@resilience_route`` view decorator.

A route is chosen by URL name or by path. Every route that matches a request applies, from the most
specific — a decorated view, then a URL name, then an exact path, then globs and regexes by the
length of their literal part (a glob first on a tie) — to the broadest:

- ``timeout``, ``retry_after`` and ``trust_timeout_header`` come from the most specific route that
  sets them, so a route that only sets a timeout inherits the rest from the broader ones;
- every ``max_concurrency`` and every ``rate`` of a matching route applies: caps nest (a request
  on ``/api/quote/`` counts against the ``/api/*`` cap and its own), and so do per-client limits.

``path_regex`` runs on RE2 (``google-re2``: linear time, no backtracking), so no pattern can make a
crafted path cost seconds of CPU; each path's result is cached (bounded: clients choose paths).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import get_resolver

from resilience.core.bulkhead import Bulkhead
from resilience.core.validation import check_number, reject_unknown_keys
from resilience.exceptions import ConfigurationError

ROUTE_KEYS = {"name", "path", "path_regex", "timeout", "max_concurrency", "retry_after", "trust_timeout_header", "rate"}
INHERITED = ("timeout", "retry_after", "trust_timeout_header")
VIEW_ATTRIBUTE = "resilience_route"
RESOLVE_CACHE_SIZE = 4096  # paths whose effective route is remembered


@dataclass
class Route:
    """One route's policy. ``timeout``: seconds (None: no deadline); ``max_concurrency``: None = no cap.

    ``explicit`` names the fields the entry sets itself (the rest are inherited from broader routes);
    ``bulkheads`` and ``rates`` are every cap and per-client limit that applies, most specific first,
    each rate with the label of the route that set it (its counter)."""

    label: str = "default"
    rate: Any = None  # a per-client rate limit on this route (see resilience.ratelimit.admission)
    timeout: float | None = None
    max_concurrency: int | None = None
    retry_after: int = 1
    trust_timeout_header: bool = True
    bulkhead: Bulkhead | None = field(default=None, repr=False)
    explicit: frozenset[str] = field(default=frozenset(), repr=False)
    bulkheads: tuple[Bulkhead, ...] = field(default=(), repr=False)
    rates: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.bulkhead is None:
            self.bulkhead = Bulkhead(self.max_concurrency)
        if not self.bulkheads and self.bulkhead is not None:
            self.bulkheads = (self.bulkhead,)
        if not self.rates and self.rate is not None:
            self.rates = ((self.label, self.rate),)

    def try_enter(self) -> bool:
        """Take a permit of every cap that applies, or none at all."""
        taken: list[Bulkhead] = []
        for bulkhead in self.bulkheads:
            if not bulkhead.try_acquire():
                for held in taken:
                    held.release()
                return False
            taken.append(bulkhead)
        return True

    def leave(self) -> None:
        for bulkhead in self.bulkheads:
            bulkhead.release()


def merged(routes: list[Route]) -> Route:
    """The effective route of a request that ``routes`` match (most specific first)."""
    if len(routes) == 1:
        return routes[0]
    values: dict[str, Any] = {}
    for name in INHERITED:
        source = next((r for r in routes if name in r.explicit), None)
        if source is not None:
            values[name] = getattr(source, name)
    capped = next((r for r in routes if r.max_concurrency is not None), None)
    return Route(
        label=routes[0].label,
        timeout=values.get("timeout"),
        retry_after=values.get("retry_after", 1),
        trust_timeout_header=values.get("trust_timeout_header", True),
        max_concurrency=capped.max_concurrency if capped else None,  # the tightest-placed cap, for events
        bulkhead=capped.bulkhead if capped else None,
        bulkheads=tuple(b for r in routes for b in r.bulkheads),
        rates=tuple(rate for r in routes for rate in r.rates),
        explicit=frozenset(values),
    )


def _regex_engine() -> Any:
    try:
        import re2
    except ImportError:
        return None
    return re2


def compile_path_regex(pattern: str, where: str) -> Any:
    """``pattern`` compiled with RE2 (linear time), or a clear error naming ``where``."""
    engine = _regex_engine()
    if engine is None:
        raise ConfigurationError(
            f"{where} needs the google-re2 package (pip install 'django-resilience[routes]'): Python's re can take "
            "seconds on a crafted path; or use a path glob"
        )
    try:
        re.compile(pattern)  # Python's own message for plain syntax errors
    except re.error as exc:
        raise ConfigurationError(f"{where} does not compile: {exc}") from None
    options = engine.Options()
    options.log_errors = False
    options.never_capture = True
    try:
        return engine.compile(pattern, options=options)
    except engine.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ConfigurationError(f"{where} uses what RE2 does not support (backreferences, lookaround): {detail}") from None


_REGEX_NOISE = re.compile(r"\\.|\[(?:\\.|[^\]])*\]|\{[0-9,]*\}|[.^$*+?|()]")


def literal_length(pattern: str) -> int:
    """Characters a regex matches literally (escapes, classes, quantifiers and operators removed):
    its specificity beside globs, so ``^/items/\\d+/$`` beats ``/api/*`` and any ``*``."""
    return len(_REGEX_NOISE.sub("", pattern))


def _validated(entry: Any, path: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{path} must be a dict, got {type(entry).__name__}")
    reject_unknown_keys(entry, ROUTE_KEYS, path)
    selectors = [k for k in ("name", "path", "path_regex") if k in entry]
    if len(selectors) != 1 or not isinstance(entry[selectors[0]], str) or not entry[selectors[0]]:
        raise ConfigurationError(f'{path} needs exactly one of "name", "path" or "path_regex" (a non-empty string)')
    if entry.get("timeout") is not None:  # seconds
        check_number(f'{path}["timeout"]', entry["timeout"], 0, 86_400, low_open=True)
    if entry.get("max_concurrency") is not None:
        check_number(f'{path}["max_concurrency"]', entry["max_concurrency"], 1, 1_000_000, integer=True)
    check_number(f'{path}["retry_after"]', entry.get("retry_after", 1), 0, 86_400, integer=True)  # whole seconds
    trust = entry.get("trust_timeout_header", True)
    if not isinstance(trust, bool):
        raise ConfigurationError(f'{path}["trust_timeout_header"] must be True or False, got {trust!r}')
    if "path_regex" in entry:
        compile_path_regex(entry["path_regex"], f'{path}["path_regex"]')
    return entry


def route_from(values: dict[str, Any], label: str) -> Route:
    return Route(
        label=label,
        rate=values.get("rate"),
        timeout=values.get("timeout"),
        max_concurrency=values.get("max_concurrency"),
        retry_after=values.get("retry_after", 1),
        trust_timeout_header=values.get("trust_timeout_header", True),
        explicit=frozenset(k for k in INHERITED if k in values),
    )


class RouteTable:
    """Built once from settings; ``match`` is called on every request."""

    def __init__(self, entries: Any, path: str = 'RESILIENCE["ROUTES"]') -> None:
        if not isinstance(entries, (list, tuple)):
            raise ConfigurationError(f"{path} must be a list of dicts, got {type(entries).__name__}")
        self.by_name: dict[str, Route] = {}
        self.exact: dict[str, Route] = {}
        self.patterns: list[tuple[float, Any, Route]] = []  # most specific first
        for i, raw in enumerate(entries):
            where = f"{path}[{i}]"
            entry = _validated(raw, where)
            if "name" in entry:
                self.by_name[entry["name"]] = route_from(entry, f"name:{entry['name']}")
            elif "path" in entry and not any(c in entry["path"] for c in "*?["):
                self.exact[entry["path"]] = route_from(entry, f"path:{entry['path']}")
            elif "path" in entry:
                literal = len(entry["path"].replace("*", "").replace("?", ""))
                regex = re.compile(fnmatch.translate(entry["path"]))  # fnmatch's patterns do not backtrack
                self.patterns.append((1_000 + literal, regex, route_from(entry, f"path:{entry['path']}")))
            else:
                regex = compile_path_regex(entry["path_regex"], f'{where}["path_regex"]')
                literal = literal_length(entry["path_regex"])
                self.patterns.append((1_000 + literal - 0.5, regex, route_from(entry, f"regex:{entry['path_regex']}")))
        self.patterns.sort(key=lambda p: -p[0])
        self._matched: dict[tuple[str | None, str], Route | None] = {}
        self._decorated_seen = 0
        self._loaded: set[str | None] = set()  # URLconfs this table has made sure are imported

    def all_routes(self) -> list[Route]:
        """Every configured route (for checks)."""
        return [*self.by_name.values(), *self.exact.values(), *(p[2] for p in self.patterns)]

    def match(self, path: str, urlconf: str | None = None) -> Route | None:
        """The effective route of ``path`` (``urlconf``: the request's own, if middleware set one)."""
        key = (urlconf, path)
        if self._decorated_seen == len(_DECORATED):  # else views registered since: answers may be stale
            try:
                return self._matched[key]
            except KeyError:
                pass
        route = self._match(path, urlconf)
        if len(self._matched) >= RESOLVE_CACHE_SIZE or self._decorated_seen != len(_DECORATED):
            self._matched.clear()  # bounded (clients choose paths); stale once more views registered
            self._decorated_seen = len(_DECORATED)
        self._matched[key] = route
        return route

    def _match(self, path: str, urlconf: str | None) -> Route | None:
        found: list[Route] = []
        if urlconf not in self._loaded:  # the middleware runs before Django first imports the URLconf,
            self._loaded.add(urlconf)  # and decorated views register when it is imported
            _import_urlconf(urlconf)
        if self.by_name or _DECORATED:
            found += self._match_view(path, urlconf)
        exact = self.exact.get(path)
        if exact is not None:
            found.append(exact)
        found += [route for _, regex, route in self.patterns if regex.match(path)]
        return merged(found) if found else None

    def _match_view(self, path: str, urlconf: str | None) -> list[Route]:
        """The routes of the view ``path`` resolves to, most specific first: its decorator's, then its
        URL name's (both apply: a decorator added for a timeout must not drop the name's cap)."""
        try:
            match = get_resolver(urlconf).resolve(path)
        except Exception:  # noqa: BLE001 - a 404 path simply matches by path
            return []
        view_class = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)  # Django / DRF
        decorated = getattr(match.func, VIEW_ATTRIBUTE, None) or getattr(view_class, VIEW_ATTRIBUTE, None)
        named = self.by_name.get(match.view_name) or self.by_name.get(match.url_name or "")
        return [route for route in (decorated, named) if route is not None]


def _import_urlconf(urlconf: str | None) -> None:
    try:
        get_resolver(urlconf).url_patterns  # noqa: B018 - imports the module
    except Exception:  # noqa: BLE001 - a broken URLconf is Django's to report, at resolve time
        pass


def parse_routes(value: Any, path: str) -> RouteTable:
    """``RESILIENCE["ROUTES"]`` as the table the middleware matches (its ``PARSERS`` entry)."""
    return RouteTable(value, path)


_DECORATED: list[Route] = []


def resilience_route(
    *,
    timeout: float | None = None,
    max_concurrency: int | None = None,
    retry_after: int | None = None,
    trust_timeout_header: bool | None = None,
) -> Callable[[Any], Any]:
    """Give one view (function or class) its own route policy; it is the most specific route. What it
    leaves as None is inherited from the broader ``ROUTES`` entries that match (caps nest)."""
    given = {"timeout": timeout, "max_concurrency": max_concurrency, "retry_after": retry_after,
             "trust_timeout_header": trust_timeout_header}  # fmt: skip
    values = _validated({"name": "decorated", **{k: v for k, v in given.items() if v is not None}}, "resilience_route()")

    def decorate(view: Any) -> Any:
        route = route_from(values, f"view:{getattr(view, '__qualname__', view)}")
        setattr(view, VIEW_ATTRIBUTE, route)
        _DECORATED.append(route)
        return view

    return decorate
