"""``ResilienceMiddleware``: per route, a request deadline and a concurrency cap, sync or async.

Order of work for each request: find the route → refuse with 503 if its bulkhead is full → set the
deadline (the route's timeout, shortened by the caller's ``X-Request-Timeout``/``grpc-timeout``,
never lengthened) → the rest of the stack. ``DeadlineExceeded`` escaping the view becomes a 504.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import resolve

from .conf import on_reload, resilience_settings
from .core.deadline import deadline
from .core.event import Event
from .core.timeout_header import parse_grpc, parse_seconds
from .events import emit
from .exceptions import DeadlineExceeded
from .routes import Route, RouteTable

_table: RouteTable | None = None


def route_table() -> RouteTable:
    global _table
    if _table is None:
        _table = RouteTable(resilience_settings.ROUTES)
    return _table


def _reset() -> None:
    global _table
    _table = None


on_reload(_reset)


def _caller_timeout(request: HttpRequest) -> float | None:
    meta = request.META
    seconds = parse_seconds(meta.get("HTTP_X_REQUEST_TIMEOUT"))
    grpc = parse_grpc(meta.get("HTTP_GRPC_TIMEOUT"))
    if seconds is None or (grpc is not None and grpc < seconds):
        return grpc
    return seconds


def _timeout(route: Route, request: HttpRequest) -> float | None:
    caller = _caller_timeout(request) if route.trust_timeout_header else None
    if route.timeout is None:
        return caller
    return route.timeout if caller is None else min(caller, route.timeout)


def _overloaded(route: Route) -> HttpResponse:
    emit(Event("middleware", "shed", route.label, {"max_concurrency": route.max_concurrency}))
    response = JsonResponse({"detail": "The service is busy. Try again shortly."}, status=503)
    response["Retry-After"] = str(route.retry_after)
    return response


def _timed_out(request: HttpRequest) -> HttpResponse:
    route = getattr(request, "resilience_route", None)
    emit(Event("middleware", "deadline_exceeded", route.label if route else "default", {"path": request.path[:200]}))
    return JsonResponse({"detail": "The request took too long."}, status=504)


class ResilienceMiddleware:
    """Place it right after ``SecurityMiddleware`` (system check ``resilience.E010`` says so)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        route = route_table().match(request.path_info, resolve)
        if route is None:
            return self.get_response(request)
        request.resilience_route = route  # type: ignore[attr-defined]
        bulkhead = route.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            return _overloaded(route)
        try:
            seconds = _timeout(route, request)
            if seconds is None:
                return self.get_response(request)
            with deadline(seconds):
                return self.get_response(request)
        finally:
            if bulkhead is not None:
                bulkhead.release()

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        route = route_table().match(request.path_info, resolve)
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        if route is None:
            return await get_response(request)
        request.resilience_route = route  # type: ignore[attr-defined]
        bulkhead = route.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            return _overloaded(route)
        try:
            seconds = _timeout(route, request)
            if seconds is None:
                return await get_response(request)
            with deadline(seconds):
                return await get_response(request)
        finally:
            if bulkhead is not None:
                bulkhead.release()

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DeadlineExceeded):
            return _timed_out(request)
        return None
