"""Views for the tests that run a real gunicorn server (``tests.live.LiveServer``)."""

import time

from django.db import connection, transaction
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.views import ObtainAuthToken

from resilience import remaining
from resilience.throttling import LoginRateThrottle


def slow_query(request):
    """A query that takes 0.2 s, cancelled by the request deadline when that is shorter."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.2)")
    return JsonResponse({"ok": True})


def quick_query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True, "remaining": remaining()})


def upload(request):
    return JsonResponse({"bytes": len(request.body)})


def stream(request):
    seconds = float(request.GET.get("seconds", "2"))

    def chunks():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            yield b"."
            time.sleep(0.1)
        yield b"done"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def pg_read(request):
    """A read that takes a little while (so cuts land mid-statement), outside any transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM live_writes, pg_sleep(0.02)")
        return JsonResponse({"rows": cursor.fetchone()[0]})


@csrf_exempt
def pg_write(request):
    """One row per call, keyed by the client's idempotency key (no unique index: a write the server
    ran twice would show as two rows). ``?atomic=1``: two statements in a transaction."""
    key = request.headers["Idempotency-Key"]
    if request.GET.get("atomic"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.01)")
            cursor.execute("INSERT INTO live_writes (key, via) VALUES (%s, 'atomic')", (key,))
    else:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO live_writes (key, via) SELECT %s, 'autocommit' FROM pg_sleep(0.01)", (key,))
    return JsonResponse({"key": key})


class Login(ObtainAuthToken):
    throttle_classes = [LoginRateThrottle]


urlpatterns = [
    path("slow-query/", slow_query),
    path("quick-query/", quick_query),
    path("upload/", upload),
    path("stream/", stream),
    path("api-token-auth/", Login.as_view()),
    path("pg-read/", pg_read),
    path("pg-write/", pg_write),
]


async def async_call_timeout(request):
    """A dependency slower than its breaker's own timeout: CallTimeout, which must be a 504, not a 500."""
    import asyncio

    from resilience import circuit_breaker

    async with circuit_breaker("slow-async", timeout=0.05):
        await asyncio.sleep(1)
    return JsonResponse({"ok": True})


async def async_open_breaker(request):
    from resilience import breakers, circuit_breaker

    breakers.get_or_create("forced-async").force_open()

    @circuit_breaker("forced-async")
    async def call():
        return 1

    await call()
    return JsonResponse({"ok": True})


async def async_deadline(request):
    from resilience import DeadlineExceeded

    raise DeadlineExceeded()


def sync_call_timeout(request):
    from resilience import circuit_breaker

    circuit_breaker("slow-sync", timeout=0.05).call(time.sleep, 1)
    return JsonResponse({"ok": True})


urlpatterns += [
    path("async/call-timeout/", async_call_timeout),
    path("async/open-breaker/", async_open_breaker),
    path("async/deadline/", async_deadline),
    path("sync/call-timeout/", sync_call_timeout),
]


# -- the chaos test (tests/test_chaos.py) ---------------------------------------------------------
# Upstream calls and rate-limited routes of a small project, plus what a test needs to see each
# gunicorn worker's own view: every response names its worker (``tests.worker_pid``).


_UPSTREAM = None


def _upstream_session():
    """One ``ResilientSession`` per worker, made on its first upstream call."""
    from resilience.integrations.http.session import ResilientSession

    global _UPSTREAM
    if _UPSTREAM is None:
        _UPSTREAM = ResilientSession(timeout=2)
    return _UPSTREAM


def chaos_upstream(request):
    """One outbound GET through ``ResilientSession`` to ``settings.CHAOS_UPSTREAM`` (a
    ``tests.httpserver.LocalHTTPServer``); ``?status=503`` makes the upstream fail. A failing upstream
    is this view's 502; an open breaker is the middleware's 503."""
    from django.conf import settings

    status = int(request.GET.get("status", "200"))
    answer = _upstream_session().get(f"{settings.CHAOS_UPSTREAM}/{status}")
    response = JsonResponse({"upstream": answer.status_code}, status=200 if answer.status_code < 500 else 502)
    response._has_been_logged = True  # an upstream failing is the breaker's events, not a line per request
    return response


def chaos_breaker(request):
    """This worker's own view of a breaker: its pid, state and the (store-clock) time of the last transition."""
    import os

    from resilience import breakers

    breaker = breakers.get_or_create(request.GET["name"])
    return JsonResponse({"pid": os.getpid(), "state": breaker.state, "since": breaker.view().since})


def _limited_view(scope):
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from resilience.throttling import ScopedRateThrottle

    class Limited(APIView):
        authentication_classes: list = []
        permission_classes: list = []
        throttle_classes = [ScopedRateThrottle]
        throttle_scope = scope

        def get(self, request):
            return Response({"scope": scope})

    return Limited.as_view()


urlpatterns += [
    path("chaos/upstream/", chaos_upstream),
    path("chaos/breaker/", chaos_breaker),
    path("chaos/limited/", _limited_view("chaos")),
    path("chaos/recovery/", _limited_view("recovery")),
]
