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


class ClassRateThrottle(IPRateThrottle):
    rate = "2/min"  # DRF's convention: the class's own rate


class ClassRate(APIView):
    throttle_classes = [ClassRateThrottle]

    def get(self, request):
        return Response({"ok": True})


class Login(APIView):
    throttle_classes = [LoginRateThrottle]
    authentication_classes = []
    permission_classes = []

    def post(self, request):
        from django.contrib.auth import authenticate, login

        user = authenticate(request._request, username=request.data.get("username"), password=request.data.get("password"))
        if user is None:  # authenticate() sent user_login_failed: the pair's cool-off counts it
            return Response({"detail": "Invalid credentials."}, status=400)  # same for unknown and known users
        login(request._request, user)  # user_logged_in: the pair's cool-off is cleared
        return Response({"token": "t"})


urlpatterns = [
    path("api/ip/", IPOnly.as_view()),
    path("api/stacked/", Stacked.as_view()),
    path("api/login/", Login.as_view()),
    path("api/class-rate/", ClassRate.as_view()),
]
