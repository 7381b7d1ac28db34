"""Views for the Prometheus tests: the scrape view, and a breaker-protected call that fails on demand."""

from django.http import JsonResponse
from django.urls import include, path

from resilience import CircuitOpenError, circuit_breaker


@circuit_breaker("x")
def dependency(fail: bool) -> str:
    if fail:
        raise RuntimeError("down")
    return "ok"


@circuit_breaker("y")
def healthy() -> str:
    return "ok"


def call(request):
    """``?fail=1&times=3``: call the dependency ``times`` times in this request; the outcome of each."""
    fail, times = request.GET.get("fail") == "1", min(int(request.GET.get("times", "1")), 20)
    outcomes = []
    for _ in range(times):
        try:
            outcomes.append(healthy() if request.GET.get("breaker") == "y" else dependency(fail))
        except CircuitOpenError:
            outcomes.append("rejected")
        except RuntimeError:
            outcomes.append("failed")
    return JsonResponse({"outcomes": outcomes})


urlpatterns = [path("call/", call), path("resilience/", include("resilience.urls"))]
