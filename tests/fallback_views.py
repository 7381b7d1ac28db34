"""Views for the fallback tests: a tenant-scoped widget whose dependency sits behind a breaker."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from resilience import circuit_breaker, fallback

store = {}  # tenant -> what the dependency currently answers


@fallback("dashboard", stale_for=600, scope="tenant", default={"items": []})
@circuit_breaker("dashboard-source")
def dashboard_data(tenant):
    return {"items": store[tenant]}


class Dashboard(APIView):
    def get(self, request):
        from resilience.tenancy import tenant_of

        return Response(dashboard_data(tenant_of(request)))


urlpatterns = [path("dashboard/", Dashboard.as_view())]
