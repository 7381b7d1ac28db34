"""Demo API: a call to a flaky upstream, protected by the "upstream" circuit breaker."""

from typing import Any

from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from resilience import CircuitOpenError, breakers, circuit_breaker

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
    from django.shortcuts import render

    return render(request, "demo/dashboard.html", {"quote": protected_quote(), "tips": LazyTips()})
