"""URLconf of ``benchmarks/middleware.py``: one trivial DRF view, named ``bench``, at ``/bench/``.

``settings.BENCH_EXTRA_URLS`` (default 0) puts that many other plain paths before it, for a
URLconf of a more realistic size (Django tries the patterns in order when it resolves a path).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from resilience.core.deadline import remaining

# The script sets this to a list to record the deadline each request sees (sanity checks only,
# never while timing); a None check is the view's only extra work.
PROBE: list[float | None] | None = None


@api_view(["GET"])
def bench(request: Request) -> Response:
    if PROBE is not None:
        PROBE.append(remaining())
    return Response({"ok": True})


def _other(request: Any) -> HttpResponse:
    return HttpResponse("other")


urlpatterns = [path(f"other-{i}/<int:pk>/", _other, name=f"other-{i}") for i in range(getattr(settings, "BENCH_EXTRA_URLS", 0))]
urlpatterns.append(path("bench/", bench, name="bench"))
