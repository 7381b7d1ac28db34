"""Rate limiting for Django requests: who the client is, which policies apply, and the 429 answer.

Settings: ``RESILIENCE["RATE_LIMITS"] = {"ip": "1000/min", "fail": "open", "ipv6_prefix": 64}``
(``ip`` is the middleware's limit per client address, applied before authentication); a route's
``"rate"`` in ``RESILIENCE["ROUTES"]`` adds a per-client limit on that route, decided with the IP
limit in the same round trip. DRF throttles take their rates from ``DEFAULT_THROTTLE_RATES``.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string

from resilience.conf import on_reload, resilience_settings
from resilience.core.client_ip import IPNetwork, client_ip, client_key, is_trusted, parse_ip, parse_networks
from resilience.core.event import Event
from resilience.core.gcra import Decision
from resilience.core.validation import reject_unknown_keys
from resilience.exceptions import ConfigurationError
from resilience.observability.events import emit
from resilience.ratelimit.limiter import FAIL_MODES, Limiter, RatePolicy, policy
from resilience.routing.routes import Route

PATH = 'RESILIENCE["RATE_LIMITS"]'
_state: dict[Any, Any] = {}


def _settings() -> dict[str, Any]:
    if "settings" not in _state:
        raw = resilience_settings.RATE_LIMITS
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{PATH} must be a dict, got {type(raw).__name__}")
        reject_unknown_keys(raw, ("ip", "fail", "ipv6_prefix"), PATH)
        fail = raw.get("fail", "open")
        if fail not in FAIL_MODES:
            raise ConfigurationError(f'{PATH}["fail"] must be one of "open", "closed", "local", got {fail!r}')
        prefix = raw.get("ipv6_prefix", 64)
        if isinstance(prefix, bool) or not isinstance(prefix, int) or not 32 <= prefix <= 128:
            raise ConfigurationError(f'{PATH}["ipv6_prefix"] must be a whole number from 32 to 128, got {prefix!r}')
        _state["settings"] = {
            "fail": fail,
            "ipv6_prefix": prefix,
            "ip": policy("ip", raw["ip"], f'{PATH}["ip"]', fail, space="mw") if raw.get("ip") else None,
            "trusted": parse_networks(resilience_settings.TRUSTED_PROXIES),
        }
    return _state["settings"]  # type: ignore[no-any-return]


def limiter() -> Limiter:
    if "limiter" not in _state:
        from resilience.storage.redis.client import shared_client

        client, redis_store = shared_client(), None
        if client is not None:
            from resilience.storage.redis.ratelimit import RedisRateLimitStore

            redis_store = RedisRateLimitStore(client)
        _state["limiter"] = Limiter(redis_store)
    return _state["limiter"]  # type: ignore[no-any-return]


on_reload(_state.clear)


def trusted_proxies() -> tuple[IPNetwork, ...]:
    return _settings()["trusted"]  # type: ignore[no-any-return]


def peer_is_trusted(request: HttpRequest) -> bool:
    """True when the request's immediate peer (``REMOTE_ADDR``) is in ``TRUSTED_PROXIES``."""
    peer = parse_ip(request.META.get("REMOTE_ADDR") or "")
    return peer is not None and is_trusted(peer, trusted_proxies())


def client(request: HttpRequest) -> str:
    """The client's rate-limit identity: its address (IPv6: its /64), proxies handled as configured."""
    cached = getattr(request, "_resilience_client", None)
    if cached is None:
        meta = request.META
        address = client_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), trusted_proxies())
        cached = client_key(address, _settings()["ipv6_prefix"])
        request._resilience_client = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


def tenant(request: Any) -> str | None:
    """``RESILIENCE["TENANT_RESOLVER"]`` applied to the request; a resolver that fails counts as no tenant."""
    try:
        resolver = _state.get("resolver")
        if resolver is None:
            resolver = _state["resolver"] = import_string(resilience_settings.TENANT_RESOLVER)  # E014 checks it
        value = resolver(request)
    except Exception as exc:  # noqa: BLE001 - a broken resolver must not turn into a 500
        emit(Event("tenancy", "resolver_failed", "TENANT_RESOLVER", {"error": type(exc).__name__}))  # summarised
        return None
    return value if isinstance(value, str) and value else None


def route_policies(route: Route) -> list[RatePolicy]:
    """The per-client limits of every matching route (``route.rates``: each counted under its route)."""
    policies = []
    for label, rate in route.rates:
        key = ("route", label)
        if key not in _state:
            _state[key] = policy(f"route:{label}", rate, f'RESILIENCE["ROUTES"] {label} rate', _settings()["fail"], space="mw")
        policies.append(_state[key])
    return policies


def headers(decision: Decision, policies: list[RatePolicy]) -> dict[str, str]:
    """IETF ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers), plus ``Retry-After``."""
    out = {"RateLimit-Policy": ", ".join(p.header for p in policies)}
    tight = decision.tightest
    if tight is not None:
        out["RateLimit"] = f'"{tight.limit.policy}";r={tight.remaining};t={math.ceil(tight.reset_after)}'
    if not decision.allowed:
        out["Retry-After"] = str(max(math.ceil(decision.retry_after), 1))
    return out


def too_many_requests(decision: Decision, policies: list[RatePolicy]) -> JsonResponse:
    """The 429: a small JSON body without internals, and the headers a client needs to back off."""
    response = JsonResponse({"detail": "Too many requests. Try again later."}, status=429)
    for name, value in headers(decision, policies).items():
        response[name] = value
    response._has_been_logged = True  # type: ignore[attr-defined] # the ratelimit event is the log line (summarised)
    return response


def may_block() -> bool:
    """True when the middleware's limits go to Redis (so async requests decide them off the event loop)."""
    if "may_block" not in _state:
        configured = _settings()["ip"] is not None or any(route.rate for route in resilience_settings.ROUTES.all_routes())
        _state["may_block"] = configured and resilience_settings.REDIS is not None
    return _state["may_block"]  # type: ignore[no-any-return]


def admission_check(request: HttpRequest, route: Route) -> JsonResponse | None:
    """The middleware's limits, before authentication: per client address, and per client on the route."""
    settings = _settings()
    policies = [settings["ip"], *route_policies(route)] if settings["ip"] is not None else route_policies(route)
    if not policies:
        return None
    who = client(request)
    decision = limiter().hit([(p, who) for p in policies], resilience_settings.KEY_PREFIX)
    request.resilience_ratelimit = (decision, policies)  # type: ignore[attr-defined]
    return None if decision.allowed else too_many_requests(decision, policies)


admission_check.may_block = may_block  # type: ignore[attr-defined]
