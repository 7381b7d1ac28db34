"""Views for the middleware tests: they report the deadline they run under."""

import asyncio
import threading

from django.http import JsonResponse
from django.urls import path
from django.views import View

from resilience import remaining
from resilience.exceptions import DeadlineExceeded
from resilience.routing.routes import resilience_route

gate = threading.Event()  # tests hold requests inside a view with it
inside = threading.Semaphore(0)


def report(request, *args, **kwargs):
    return JsonResponse({"remaining": remaining()})


def expire(request):
    raise DeadlineExceeded()


def no_credentials(request):
    from resilience.exceptions import CredentialsUnavailable

    raise CredentialsUnavailable("no unexpired credentials for the role")


def hold(request):
    inside.release()
    gate.wait(10)
    return JsonResponse({"ok": True})


async def async_report(request):
    await asyncio.sleep(0)
    return JsonResponse({"remaining": remaining()})


async def async_expire(request):
    await asyncio.sleep(0)
    raise DeadlineExceeded()


@resilience_route(timeout=0.75)
def decorated(request):
    return JsonResponse({"remaining": remaining()})


@resilience_route(timeout=1.25)
class DecoratedView(View):
    def get(self, request):
        return JsonResponse({"remaining": remaining()})


urlpatterns = [
    path("report/", report, name="report"),
    path("named/", report, name="named"),
    path("items/<int:pk>/", report, name="item"),
    path("api/v1/deep/", report),
    path("expire/", expire),
    path("no-credentials/", no_credentials),
    path("hold/", hold),
    path("async/report/", async_report),
    path("async/expire/", async_expire),
    path("decorated/", decorated, name="decorated"),
    path("class/", DecoratedView.as_view()),
]
