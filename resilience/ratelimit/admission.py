"""The middleware's rate limits, before authentication, and the 429 answer.

Settings: ``RESILIENCE["RATE_LIMITS"] = {"ip": "1000/min", "fail": "open", "ipv6_prefix": 64}``
(``ip`` is the middleware's limit per client address, applied before authentication); a route's
``"rate"`` in ``RESILIENCE["ROUTES"]`` adds a per-client limit on that route, decided with the IP
limit in the same round trip. DRF throttles (``resilience.throttling``) answer with the same headers.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest, JsonResponse

from resilience.conf import on_reload, resilience_settings
from resilience.core.gcra import RateDecision
from resilience.ratelimit.identity import client_address
from resilience.ratelimit.limiter import limiter
from resilience.ratelimit.policies import RatePolicy, policy
from resilience.routing.routes import Route

_route_policies: dict[str, RatePolicy] = {}  # route label -> its policy, built once per settings change
_may_block: list[bool] = []


def _forget() -> None:
    _route_policies.clear()
    _may_block.clear()


on_reload(_forget)


def route_policy(label: str, rate: Any) -> RatePolicy:
    """The per-client policy of route ``label`` (its ``"rate"``), with ``RATE_LIMITS``'s fail mode."""
    rule = _route_policies.get(label)
    if rule is None:
        where = f'RESILIENCE["ROUTES"] {label}'
        rule = _route_policies[label] = policy(f"route:{label}", rate, where, resilience_settings.RATE_LIMITS.fail, space="mw")
    return rule


def route_policies(route: Route) -> list[RatePolicy]:
    """The per-client limits of every matching route (``route.rates``: each counted under its route)."""
    return [route_policy(label, rate) for label, rate in route.rates]


def headers(decision: RateDecision, policies: list[RatePolicy]) -> dict[str, str]:
    """IETF ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers), plus ``Retry-After``.
    Shadow policies are not enforced, so they are not announced either."""
    shadow = {p.name for p in policies if p.shadow}
    out = {"RateLimit-Policy": ", ".join(p.header for p in policies if not p.shadow)}
    states = tuple(s for s in decision.states if s.limit.policy not in shadow) if shadow else None
    tight = (decision if states is None else RateDecision(decision.allowed, states)).tightest
    if tight is not None:
        out["RateLimit"] = f'"{tight.limit.policy}";r={tight.remaining};t={math.ceil(tight.reset_after)}'
    if not decision.allowed:
        out["Retry-After"] = str(max(math.ceil(decision.retry_after), 1))
    return out


def too_many_requests(decision: RateDecision, policies: list[RatePolicy]) -> JsonResponse:
    """The 429: a small JSON body without internals, and the headers a client needs to back off."""
    response = JsonResponse({"detail": "Too many requests. Try again later."}, status=429)
    for name, value in headers(decision, policies).items():
        response[name] = value
    response._has_been_logged = True  # type: ignore[attr-defined] # the ratelimit event is the log line (summarised)
    return response


def may_block() -> bool:
    """True when the middleware's limits go to Redis (so async requests decide them off the event loop)."""
    if not _may_block:
        configured = resilience_settings.RATE_LIMITS.ip is not None or any(
            route.rate for route in resilience_settings.ROUTES.all_routes()
        )
        _may_block.append(configured and resilience_settings.REDIS is not None)
    return _may_block[0]


def admission_check(request: HttpRequest, route: Route) -> JsonResponse | None:
    """The middleware's limits, before authentication: per client address, and per client on the route."""
    ip = resilience_settings.RATE_LIMITS.ip
    policies = [ip, *route_policies(route)] if ip is not None else route_policies(route)
    if not policies:
        return None
    who = client_address(request)
    decision = limiter().hit([(p, who) for p in policies], resilience_settings.KEY_PREFIX)
    request.resilience_ratelimit = (decision, policies)  # type: ignore[attr-defined]
    return None if decision.allowed else too_many_requests(decision, policies)


admission_check.may_block = may_block  # type: ignore[attr-defined]
