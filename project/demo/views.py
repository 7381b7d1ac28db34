"""Demo API: a call to a flaky upstream, protected by the "upstream" circuit breaker; the demo's
pages (``templates/demo/``): an index, a dashboard that degrades, and an operator's status page."""

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from resilience import CircuitOpenError, breakers, circuit_breaker, circuits
from resilience.observability.events import sinks
from resilience.observability.metrics import InMemorySink

from . import upstream


@circuit_breaker("upstream")
def protected_quote() -> dict:
    return upstream.fetch_quote()


@api_view(["GET"])
def quote(request: Request) -> Response:
    try:
        return Response(protected_quote())
    except CircuitOpenError as exc:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after is not None else {}
        return Response(
            {"detail": "The quote service is unavailable."}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=headers
        )
    except ConnectionError:
        return Response({"detail": "The quote service failed."}, status=status.HTTP_502_BAD_GATEWAY)


@api_view(["POST"])
def chaos(request: Request) -> Response:
    """POST {"failure_rate": 0.8} to make the upstream fail (demo only)."""
    try:
        data = request.data  # any JSON: an object, a list, a string, null
    except RecursionError:  # nesting deeper than Python's parser goes: DRF lets it through
        data = None
    raw = data.get("failure_rate", 0) if isinstance(data, dict) else None
    rate = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
    if rate is None or not 0 <= rate <= 1:  # NaN fails both comparisons
        return Response({"detail": "Send a JSON object with failure_rate, a number from 0 to 1."}, status=400)
    upstream.set_failure_rate(rate)
    return Response({"failure_rate": upstream.failure_rate, "breaker": breakers.get_or_create("upstream").state})


TIPS = ["Set deadlines on every request.", "Retry only what is safe to retry.", "Fail closed on authentication."]


@circuit_breaker("tips")
def fetch_tips() -> list[str]:
    """A non-critical dependency: when its breaker is open the page shows a placeholder instead."""
    return TIPS


class LazyTips:
    """Fetched while the template renders, inside the {% degradable %} block."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(fetch_tips())


def dashboard(request: Any) -> Any:
    """A page with a critical widget (the quote: 503 if its breaker is open) and a non-critical one."""
    return render(request, "demo/dashboard.html", {"quote": protected_quote(), "tips": LazyTips()})


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html")


MAX_METRICS = 200  # counter rows on the status page
TIMELINE_ROWS = 25  # breakers drawn on the status page's timeline (the admin pages through all of them)


def _limits(sink: InMemorySink | None) -> list[dict[str, Any]]:
    """What limits requests, as configured (settings are shown as written), with rejections counted
    by the in-memory sink when there is one."""

    def rejected(name: str) -> float | None:
        return sink.value("resilience.ratelimit.rejected", name=name) if sink is not None else None

    config = getattr(settings, "RESILIENCE", {}) or {}
    out = []
    if (config.get("RATE_LIMITS") or {}).get("ip"):
        out.append({"where": "every client (middleware)", "limit": config["RATE_LIMITS"]["ip"], "rejected": rejected("ip")})
    for route in config.get("ROUTES", []):
        label = route.get("name") or route.get("path") or route.get("path_regex")
        caps = [
            f"{route['timeout']} s deadline" if route.get("timeout") else "",
            f"{route['max_concurrency']} at once" if route.get("max_concurrency") else "",
            f"{route['rate']} per client" if route.get("rate") else "",
        ]
        out.append({"where": f"route {label}", "limit": ", ".join(c for c in caps if c), "rejected": None})
    for scope, rate in (getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_THROTTLE_RATES") or {}).items():
        out.append({"where": f"DRF throttle {scope}", "limit": rate, "rejected": rejected(scope)})
    return out


@permission_required("resilience.view_circuit", login_url=reverse_lazy("admin:login"))
def status_page(request: HttpRequest) -> HttpResponse:
    """Breakers with their state timeline, limits, metrics and store health, for operators."""
    snaps = breakers.all()
    sink = next((s for s in sinks() if isinstance(s, InMemorySink)), None)
    metrics = None
    if sink is not None:
        counters = sorted(dict(sink.counters).items())[:MAX_METRICS]
        metrics = [(metric, ", ".join(f"{k}={v}" for k, v in tags), value) for (metric, tags), value in counters]
    context = {
        "snaps": snaps,
        **circuits.timeline_context({s.name: s.state for s in snaps[:TIMELINE_ROWS]}, circuits.RANGES["24h"]),
        "limits": _limits(sink),
        "metrics": metrics,
        "health": circuits.store_health({s.name: s for s in snaps}),
        "store": "Redis (shared by every worker)" if breakers.store.remote else "in-process (this worker only)",
    }
    return render(request, "demo/status.html", context)
