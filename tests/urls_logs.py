"""A DRF view for the JSON log tests: the tenant throttle resolves the tenant, then a breaker fails."""

import logging

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from resilience import CircuitOpenError, circuit_breaker
from resilience.throttling import TenantRateThrottle


@circuit_breaker("logs-upstream")
def upstream():
    raise ConnectionError("upstream down")


class Flaky(APIView):
    throttle_classes = [TenantRateThrottle]

    def get(self, request):
        logging.getLogger("resilience.tests.view").info("serving")  # the app's own line: the filter adds the ids too
        try:
            upstream()
        except (ConnectionError, CircuitOpenError):
            return Response({"degraded": True}, status=503)
        return Response({"ok": True})


urlpatterns = [path("api/flaky/", Flaky.as_view())]
