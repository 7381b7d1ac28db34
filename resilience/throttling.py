"""DRF throttles backed by the limiter: exact under racing workers, one round trip per request.

    REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["resilience.throttling.IPRateThrottle", "resilience.throttling.TenantRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"ip": "100/min", "tenant": "1000/min;burst=200", "login": "5/min"},
    }

Rates come from ``api_settings`` (never bound at class definition), in DRF's syntax plus an
optional ``;burst=N``, parsed once per settings change. Every resilience throttle of a view is decided in the same
call, so several of them still cost one round trip; a request refused by one consumes nothing
from the others. ``wait()`` is the seconds until the refusing limit would admit the request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    from rest_framework.settings import api_settings
    from rest_framework.throttling import BaseThrottle
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without DRF
    from resilience.integrations.extras import missing

    raise missing("rest_framework", "resilience.throttling") from exc

from django.core.signals import setting_changed

from resilience.conf import on_reload, resilience_settings
from resilience.core.gcra import LimitState, RateDecision
from resilience.exceptions import ConfigurationError
from resilience.ratelimit.identity import client_address, identity_text, normalise
from resilience.ratelimit.limiter import limiter
from resilience.ratelimit.policies import CHECK_PREFIX, RatePolicy, check_login_fail, policy
from resilience.tenancy import tenant_of

_DECISION = "_resilience_throttle_decision"
_MISSING = object()  # a scope without a rate in DEFAULT_THROTTLE_RATES
Pairs = list[tuple[RatePolicy, str]]


class ResilienceThrottle(BaseThrottle):  # type: ignore[misc]
    """Base: a scope (the rate's key in ``DEFAULT_THROTTLE_RATES``) and who is counted.

    As in DRF, a scope missing from ``DEFAULT_THROTTLE_RATES`` is ``ImproperlyConfigured`` (and the
    system check ``resilience.E013``), never "no limit"; a scope set to ``None`` is unthrottled on
    purpose; a ``rate`` attribute on a subclass is used instead of the settings."""

    scope: str = ""
    rate: Any = None  # DRF's convention: a rate on the class wins over DEFAULT_THROTTLE_RATES[scope]
    default_fail: str | None = None  # None: RESILIENCE["RATE_LIMITS"]["fail"]

    def get_scope(self, view: Any) -> str:
        return self.scope

    def policies(self, request: Any, view: Any) -> Pairs:
        """(policy, identity) pairs this throttle adds to the request's decision; empty: does not apply."""
        scope = self.get_scope(view)
        if not scope and self.rate is None:
            return []  # e.g. ScopedRateThrottle on a view without ``throttle_scope``: DRF lets it pass
        rule = self.rate_policy(scope, self.rate)
        identity = self.identity(request, view) if rule is not None else None
        return [] if identity is None or rule is None else [(rule, identity)]

    def identity(self, request: Any, view: Any) -> str | None:
        return client_address(_django(request))

    def rate_policy(self, scope: str, rate: Any = None, *, required: bool = True) -> RatePolicy | None:
        """The policy of ``scope`` (``rate``: the class's own). Missing: ``ImproperlyConfigured`` when
        ``required``, else None; set to None in the settings: no limit."""
        fail = self.default_fail or resilience_settings.RATE_LIMITS.fail
        if rate is not None:  # the class's own rate: its own counter, never the one of the scope it inherits
            return class_policy(type(self), rate, fail)
        return scope_policy(scope, fail, required=required)

    def allow_request(self, request: Any, view: Any) -> bool:
        decision, mine = _decide(self, request, view)
        if decision.allowed:  # the common case: no per-limit state is needed (DRF asks wait() of refusals only)
            self._states: list[LimitState] = []
            return True
        names = {rule.name for rule, _ in mine if not rule.shadow}  # a shadow limit reports, never refuses
        self._states = [s for s in decision.states if s.limit.policy in names]
        return all(s.allowed for s in self._states)

    def wait(self) -> float | None:
        refusing: list[LimitState] = [s for s in getattr(self, "_states", []) if not s.allowed]
        return max((s.retry_after for s in refusing), default=None)


# Policies of DEFAULT_THROTTLE_RATES and of throttle classes, parsed once per settings change
# (RESILIENCE's fail mode or REST_FRAMEWORK): rates come from settings and code, never from clients.
_parsed: dict[tuple[Any, ...], Any] = {}


def scope_policy(scope: str, fail: str, name: str | None = None, *, required: bool = True) -> RatePolicy | None:
    """``DEFAULT_THROTTLE_RATES[scope]`` as a policy named ``name`` (default: the scope); None when set
    to None (no limit). A scope without a rate is ``ImproperlyConfigured`` when ``required`` (as in
    DRF), else None."""
    key = ("scope", scope, fail, name)
    if key not in _parsed:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if scope not in rates:
            _parsed[key] = _MISSING
        elif rates[scope] is None:
            _parsed[key] = None
        else:
            where = f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{scope}"]'
            _parsed[key] = policy(name or scope, rates[scope], where, fail, space="drf")
    rule = _parsed[key]
    if rule is _MISSING:
        if required:
            raise ImproperlyConfigured(f"No default throttle rate set for '{scope}' scope")
        return None
    return rule  # type: ignore[no-any-return]


def class_policy(cls: type, rate: Any, fail: str) -> RatePolicy:
    """The policy of a throttle class's own ``rate`` attribute, counted under the class's name."""
    key = ("class", cls, rate if isinstance(rate, str) else repr(rate), fail)
    if key not in _parsed:
        _parsed[key] = policy(f"{cls.__module__}.{cls.__qualname__}", rate, cls.__qualname__, fail, space="drf")
    return _parsed[key]  # type: ignore[no-any-return]


def _forget_policies(*, setting: str, **kwargs: Any) -> None:
    if setting == "REST_FRAMEWORK":
        _parsed.clear()


on_reload(_parsed.clear)
setting_changed.connect(_forget_policies, dispatch_uid="resilience.throttling")


def _decide(throttle: ResilienceThrottle, request: Any, view: Any) -> tuple[RateDecision, Pairs]:
    """The decision for ``throttle`` and the pairs it contributed. Every resilience throttle of the
    view is decided in one limiter call, its pairs built once, both remembered on the request. A
    throttle decides on its own without a view (DRF allows ``allow_request(request, None)``) and when
    the view does not list it (checked by hand inside an action, the DRF way)."""
    prefix = resilience_settings.KEY_PREFIX
    if view is None or not hasattr(view, "get_throttles"):
        mine = throttle.policies(request, view)
        return limiter().hit(mine, prefix), mine
    cached = request.__dict__.get(_DECISION)  # not getattr: DRF's Request would look on its HttpRequest, raising twice
    if cached is None:
        by_class: dict[type, Pairs] = {}
        for each in view.get_throttles():
            if isinstance(each, ResilienceThrottle) and type(each) not in by_class:
                by_class[type(each)] = each.policies(request, view)
        pairs = [pair for each_pairs in by_class.values() for pair in each_pairs]
        cached = (limiter().hit(pairs, prefix), by_class)
        setattr(request, _DECISION, cached)
        _django(request).resilience_ratelimit = (cached[0], [rule for rule, _ in pairs])  # for the 429's headers
    decision, by_class = cached
    listed = by_class.get(type(throttle))
    if listed is None:  # not one of the view's throttles
        mine = throttle.policies(request, view)
        return limiter().hit(mine, prefix), mine
    return decision, listed


def _django(request: Any) -> Any:
    """The Django ``HttpRequest`` under a DRF ``Request`` (or the request itself)."""
    return getattr(request, "_request", request)


class IPRateThrottle(ResilienceThrottle):
    """Per client address (proxy-aware, ``RESILIENCE["TRUSTED_PROXIES"]``); scope ``ip``."""

    scope = "ip"


class TenantRateThrottle(ResilienceThrottle):
    """Per tenant (``RESILIENCE["TENANT_RESOLVER"]``); scope ``tenant``. No tenant: does not apply."""

    scope = "tenant"

    def identity(self, request: Any, view: Any) -> str | None:
        return tenant_of(request)


class ScopedRateThrottle(ResilienceThrottle):
    """The view's ``throttle_scope``, per user when authenticated, else per client address."""

    def get_scope(self, view: Any) -> str:
        return getattr(view, "throttle_scope", "") or ""

    def identity(self, request: Any, view: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return f"ip:{client_address(_django(request))}"


class LoginRateThrottle(ResilienceThrottle):
    """For login views, counted before the credentials are checked: per client address (scope
    ``login``), and, when their rates are set, per username (``login_username``, case- and
    unicode-folded), per (username, address) pair (``login_pair``) and for all attempts together
    (``login_global``). Fails to the local limiter when Redis is down, never open.

    ``login_cooloff`` (e.g. ``"1/min;burst=5"``): after ``burst`` failed logins of one (username,
    address) pair, that pair waits one interval, then twice as long after each further failure.
    Keyed on the pair, so nobody elsewhere can lock the user out. Failures come from Django's
    ``user_login_failed`` signal (``authenticate()``) or ``login_failed(request, username)``."""

    scope = "login"
    default_fail = "local"
    username_field = "username"

    def policies(self, request: Any, view: Any) -> Pairs:
        address = client_address(_django(request))
        username = _username(request, self.username_field)
        cooloff = cooloff_policy()
        extra = [(cooloff, _pair(username, address))] if cooloff is not None and username is not None else []
        wanted = [("login", address, self.rate), ("login_global", "all", None)]
        if username is not None:  # no username in the body: counted per address and globally only
            wanted += [("login_username", username, None), ("login_pair", _pair(username, address), None)]
        pairs = []
        for scope, identity, rate in wanted:
            rule = self.rate_policy(scope, rate, required=scope == "login")
            if rule is not None:
                check_login_fail(rule, scope)
                pairs.append((rule, identity))
        return pairs + extra


def _username(request: Any, field: str) -> str | None:
    """The username the authentication backend will see, normalised, whatever its JSON type."""
    try:
        data = request.data
    except Exception:  # noqa: BLE001 - malformed body: counted by address only; the view will refuse it
        return None
    return identity_text(data.get(field)) if hasattr(data, "get") else None


COOLOFF = f"{CHECK_PREFIX}login_cooloff"  # looked at in each decision, consumed only by failures


def cooloff_policy() -> RatePolicy | None:
    """``DEFAULT_THROTTLE_RATES["login_cooloff"]`` (None: no cool-off), failing to the local limiter."""
    return scope_policy("login_cooloff", "local", COOLOFF, required=False)


def _pair(username: str, address: str) -> str:
    """One key per (username, address): the username normalised first, so "victim " and "victim" meet."""
    return f"{normalise(username)}\x00{address}"


def _address(request: Any) -> str | None:
    django_request = _django(request)
    return client_address(django_request) if hasattr(django_request, "META") else None


def login_failed(request: Any, username: str | None) -> None:
    """Count a failed login of ``username`` from this request's client (progressive cool-off)."""
    rule, address, name = cooloff_policy(), _address(request), identity_text(username)
    if rule is not None and address is not None and name is not None:
        limiter().penalise(rule, _pair(name, address), resilience_settings.KEY_PREFIX)


def login_succeeded(request: Any, username: str | None) -> None:
    """Clear the cool-off of ``username`` from this request's client."""
    rule, address, name = cooloff_policy(), _address(request), identity_text(username)
    if rule is not None and address is not None and name is not None:
        limiter().forgive(rule, _pair(name, address), resilience_settings.KEY_PREFIX)


def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is not None:
        login_failed(request, credentials.get("username"))


def _on_logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None:
        login_succeeded(request, user.get_username())


def connect_signals() -> None:
    from django.contrib.auth.signals import user_logged_in, user_login_failed

    user_login_failed.connect(_on_login_failed, dispatch_uid="resilience.login_failed")
    user_logged_in.connect(_on_logged_in, dispatch_uid="resilience.logged_in")


def throttle_problems(view_classes: Any) -> list[str]:
    """What ``resilience.E013`` reports: every resilience throttle in ``DEFAULT_THROTTLE_CLASSES`` or on
    one of ``view_classes`` whose scope has no rate (DRF would raise at the first request), or whose
    ``rate`` attribute does not parse."""
    from django.utils.module_loading import import_string

    rates = api_settings.DEFAULT_THROTTLE_RATES or {}
    defaults = [import_string(c) if isinstance(c, str) else c for c in api_settings.DEFAULT_THROTTLE_CLASSES or ()]
    uses = [('REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]', None, c) for c in defaults]
    for view in view_classes:
        for throttle in getattr(view, "throttle_classes", None) or ():
            uses.append((f"{view.__module__}.{view.__qualname__}", view, throttle))
    problems, seen = [], set()
    for where, view, throttle in uses:
        if not (isinstance(throttle, type) and issubclass(throttle, ResilienceThrottle)):
            continue
        if throttle.rate is not None:
            try:
                policy(throttle.__name__, throttle.rate, f"{throttle.__qualname__}")
            except ConfigurationError as exc:
                problems.append(str(exc))
            continue
        if issubclass(throttle, ScopedRateThrottle):
            scope = getattr(view, "throttle_scope", "") if view is not None else ""
        else:
            scope = throttle.scope
        if scope and scope not in rates and (where, scope) not in seen:
            seen.add((where, scope))
            problems.append(
                f"{where} uses {throttle.__name__} with scope {scope!r}, which has no rate in "
                'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (set it, or None for no limit)'
            )
    return problems
