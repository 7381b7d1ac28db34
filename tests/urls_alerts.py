"""A view that calls a failing dependency through a breaker with the caller's credentials in hand:
alert notices must never carry what a client sent (tests/observability/test_alerts.py)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience import CircuitOpenError, circuit_breaker


def charge(request: HttpRequest) -> HttpResponse:
    token = request.headers.get("Authorization", "")

    def call_upstream() -> None:
        raise ConnectionError(f"upstream refused {token} for {request.get_full_path()}")

    try:
        circuit_breaker("payments").call(call_upstream)
    except CircuitOpenError:
        return HttpResponse(status=503)
    except ConnectionError:
        return HttpResponse(status=502)
    return HttpResponse(status=200)


urlpatterns = [path("charge/", charge)]
