"""DRF views for the throttle tests."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from resilience.throttling import IPRateThrottle, LoginRateThrottle, ScopedRateThrottle, TenantRateThrottle


class IPOnly(APIView):
    throttle_classes = [IPRateThrottle]

    def get(self, request):
        return Response({"ok": True})


class Stacked(APIView):
    throttle_classes = [IPRateThrottle, TenantRateThrottle, ScopedRateThrottle]
    throttle_scope = "search"

    def get(self, request):
        return Response({"ok": True})


class Login(APIView):
    throttle_classes = [LoginRateThrottle]
    authentication_classes = []
    permission_classes = []

    def post(self, request):
        if request.data.get("username") == "alice" and request.data.get("password") == "right":
            return Response({"token": "t"})
        return Response({"detail": "Invalid credentials."}, status=400)  # same for unknown and known users


urlpatterns = [
    path("api/ip/", IPOnly.as_view()),
    path("api/stacked/", Stacked.as_view()),
    path("api/login/", Login.as_view()),
]
