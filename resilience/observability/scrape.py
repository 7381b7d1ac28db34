"""The Prometheus scrape view: never open by default.

Allowed for a staff user with ``resilience.view_circuit`` (the permission of the Circuits admin
page), or for a client address in ``RESILIENCE["METRICS"]["PROMETHEUS"]["allow"]`` (empty by
default). The address is the library's proxy-aware one: ``X-Forwarded-For`` counts only when the
peer is in ``TRUSTED_PROXIES``, so a client cannot claim an allowed address by sending the header.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse

try:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
except ImportError as exc:  # pragma: no cover - exercised without the prometheus extra
    from resilience.integrations.extras import missing

    raise missing("prometheus_client", "resilience.urls") from exc

from resilience.conf import resilience_settings
from resilience.core.client_ip import client_ip, is_trusted
from resilience.observability.prometheus import BreakerStateCollector, export_call_totals


def may_scrape(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff and user.has_perm("resilience.view_circuit"):
        return True
    allow = resilience_settings.METRICS.options["PROMETHEUS"].allow
    if not allow:
        return False
    meta = request.META
    address = client_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), resilience_settings.TRUSTED_PROXIES)
    return address is not None and is_trusted(address, allow)


class _DefaultRegistry:
    """The process's own registry (single-process mode): its counters, and whatever else it holds."""

    def collect(self):  # type: ignore[no-untyped-def]
        return REGISTRY.collect()


def registry() -> CollectorRegistry:
    """A fresh registry per scrape: every worker's counters (multiprocess mode) or this process's, and breaker state."""
    fresh = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(fresh)
    else:
        fresh.register(_DefaultRegistry())  # type: ignore[arg-type]
    fresh.register(BreakerStateCollector())  # type: ignore[arg-type]
    return fresh


def metrics(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    export_call_totals()  # this process's calls up to now; other workers export every export_interval
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
