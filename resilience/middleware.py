"""``ResilienceMiddleware``: per route, a request deadline and a concurrency cap, sync or async.

Order of work for each request: find the route → refuse with 503 if its bulkhead is full → set the
deadline (the route's timeout, shortened by the caller's ``X-Request-Timeout``/``grpc-timeout``,
never lengthened) → the rest of the stack. ``DeadlineExceeded`` escaping the view becomes a 504.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse

from resilience.conf import on_reload, resilience_settings
from resilience.core.deadline import deadline
from resilience.core.event import Event
from resilience.core.timeout_header import parse_grpc, parse_seconds
from resilience.exceptions import CallTimeout, CircuitOpenError, CredentialsUnavailable, DeadlineExceeded
from resilience.observability.events import emit
from resilience.ratelimit.admission import headers as ratelimit_headers
from resilience.ratelimit.identity import peer_is_trusted
from resilience.routing import streams
from resilience.routing.routes import Route, RouteTable
from resilience.tenancy import current_request

_trusted_peers: dict[str, bool] = {}  # REMOTE_ADDR -> in TRUSTED_PROXIES (parsing an address costs µs)
TRUSTED_PEERS_CACHED = 4096
PREREAD_MAX = 2_621_440  # bytes read before a permit when DATA_UPLOAD_MAX_MEMORY_SIZE is None (Django's default)
UNROUTED = Route(label="unrouted", trust_timeout_header=False)
AdmissionCheck = Callable[[HttpRequest, Route], "HttpResponse | None"]
admission_checks: list[AdmissionCheck] = []
"""Run in order after the bulkhead, before the view; the first response returned is sent instead
(the rate limiter plugs in here). Register with ``admission_checks.append(check)`` in ``AppConfig.ready``.
A check that may wait on I/O sets ``check.may_block = lambda: True`` (or a cheaper test): async
requests then run the checks in a worker thread instead of on the event loop."""


def _never() -> bool:
    return False


def route_table() -> RouteTable:
    """The route table of ``RESILIENCE["ROUTES"]``, built (and its caps kept) until the settings change."""
    return resilience_settings.ROUTES  # type: ignore[no-any-return]


def _reset() -> None:
    _trusted_peers.clear()


on_reload(_reset)


def _caller_timeout(request: HttpRequest) -> float | None:
    meta = request.META
    seconds = parse_seconds(meta.get("HTTP_X_REQUEST_TIMEOUT"))
    grpc = parse_grpc(meta.get("HTTP_GRPC_TIMEOUT"))
    if seconds is None or (grpc is not None and grpc < seconds):
        return grpc
    return seconds


def _may_shorten(request: HttpRequest) -> bool:
    """``TIMEOUT_HEADERS``: whose timeout headers are believed. By default only a peer in
    ``TRUSTED_PROXIES``; a short deadline can never open a shared breaker either way (see
    ``core.breaker.cut_by_deadline``), but it should not let a stranger make the server give up work."""
    mode = resilience_settings.TIMEOUT_HEADERS
    if mode != "trusted_proxies":
        return mode == "any"
    peer = request.META.get("REMOTE_ADDR") or ""
    trusted = _trusted_peers.get(peer)
    if trusted is None:
        if len(_trusted_peers) >= TRUSTED_PEERS_CACHED:
            _trusted_peers.clear()  # bounded: peers are whoever connects
        trusted = _trusted_peers[peer] = peer_is_trusted(request)
    return trusted


def _timeout(route: Route, request: HttpRequest) -> float | None:
    caller = None
    if route.trust_timeout_header and ("HTTP_X_REQUEST_TIMEOUT" in request.META or "HTTP_GRPC_TIMEOUT" in request.META):
        caller = _caller_timeout(request) if _may_shorten(request) else None
        if caller is not None:
            caller = max(caller, resilience_settings.TIMEOUT_HEADER_FLOOR)
    if route.timeout is None:
        return caller
    return route.timeout if caller is None else min(caller, route.timeout)


def quiet(response: Any) -> Any:
    """Keep ``django.request`` from logging one of the library's own 429/503/504 answers (an ERROR line
    per request during an outage): the library's event is its log line, and that one is summarised."""
    response._has_been_logged = True  # the flag Django's log_response() checks
    return response


def answered_by_library(request: Any) -> None:
    """Mark a request whose refusal comes from the library (an authentication 401/503 raised inside
    DRF, say): ``ResilienceMiddleware`` keeps ``django.request`` from logging it once more."""
    django_request = getattr(request, "_request", request)
    django_request._resilience_quiet = True


def _overloaded(route: Route) -> HttpResponse:
    emit(Event("middleware", "shed", route.label, {"max_concurrency": route.max_concurrency}))
    response = JsonResponse({"detail": "The service is busy. Try again shortly."}, status=503)
    response["Retry-After"] = str(route.retry_after)
    return quiet(response)


def _unavailable(retry_after: float | None) -> HttpResponse:
    """A critical feature's dependency is failing: a clear 503, no internals, and when to retry."""
    response = JsonResponse({"detail": "A service this page needs is unavailable. Try again shortly."}, status=503)
    response["Retry-After"] = str(max(math.ceil(retry_after), 1)) if retry_after is not None else "60"
    return quiet(response)


CREDENTIALS_RETRY_AFTER = 30.0  # seconds: no worker asks STS again sooner (integrations.aws.credentials)


def _timed_out(request: HttpRequest, kind: str = "deadline_exceeded") -> HttpResponse:
    route = getattr(request, "resilience_route", None)
    emit(Event("middleware", kind, route.label if route else "default", {}))
    return quiet(JsonResponse({"detail": "The request took too long."}, status=504))


def _body_read_first(request: HttpRequest) -> bool:
    """Under WSGI, read a small body before taking a permit: a client that sends one byte a second
    then holds a worker thread (a buffering proxy must protect those), but never a route's permit.
    ASGI servers hand Django the whole body first. False when the client broke off mid-body."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True  # Django refuses it its own way
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE or PREREAD_MAX
    if 0 < length <= limit:
        try:
            request.body  # noqa: B018 - cached on the request for the view
        except OSError:  # UnreadablePostError: the client went away
            return False
    return True


def _admit(request: HttpRequest) -> tuple[Route | None, HttpResponse | None]:
    """The request's route (also set as ``request.resilience_route``), and the response that refuses
    it: 503 when the route's bulkhead is full, or an admission check's answer. Else a permit is held."""
    route = route_table().match(request.path_info, getattr(request, "urlconf", None))
    if route is None:
        if not admission_checks:
            return None, None
        route = UNROUTED  # no deadline, no bulkhead; the admission checks (IP limit) still apply
    request.resilience_route = route  # type: ignore[attr-defined]
    if route.bulkheads and isinstance(request, WSGIRequest) and not _body_read_first(request):
        return route, JsonResponse({"detail": "The request body could not be read."}, status=400)
    if route.bulkheads and not route.try_enter():
        return route, _overloaded(route)
    try:
        for check in admission_checks:
            refused = check(request, route)
            if refused is not None:
                route.leave()
                return route, refused
    except BaseException:
        route.leave()  # a check that raises must not keep the permit
        raise
    return route, None


def _leave_if_admitted(admitted: asyncio.Future[tuple[Route | None, HttpResponse | None]]) -> None:
    """For an ``_admit`` whose request was cancelled while it ran in a thread: the permit it took, back."""
    if admitted.cancelled() or admitted.exception() is not None:
        return
    route, refused = admitted.result()
    if route is not None and refused is None:
        route.leave()


def _finished(request: HttpRequest, response: Any) -> Any:
    """The response on its way out: a 429 refused by a DRF throttle gets the same RateLimit headers as
    the middleware's own 429s, and the library's own refusals are not logged again by Django."""
    if getattr(request, "_resilience_quiet", False):
        quiet(response)
    if getattr(response, "status_code", None) == 429 and "RateLimit-Policy" not in response:
        stored = getattr(request, "resilience_ratelimit", None)
        if stored is not None:
            decision, policies = stored
            if not decision.allowed:  # refused by one of ours: its event is the log line
                quiet(response)
            for name, value in ratelimit_headers(decision, policies).items():
                if name not in response:
                    response[name] = value
    return response


class _Bounded:
    """Around the rest of the stack: the route's deadline and its permits. They end when the response
    is complete: at once for an ordinary response, when the server closes it for a streaming one."""

    __slots__ = ("route", "deadline", "handed_over")

    def __init__(self, route: Route, request: HttpRequest) -> None:
        self.route = route
        seconds = _timeout(route, request)
        self.deadline = deadline(seconds) if seconds is not None else None
        self.handed_over = False

    def __enter__(self) -> _Bounded:
        if self.deadline is not None:
            self.deadline.__enter__()
        return self

    def finish(self, response: Any) -> Any:
        if getattr(response, "streaming", False) and (self.route.bulkheads or self.deadline is not None):
            at = self.deadline.at if self.deadline is not None else None
            streams.guard(response, self.route.leave, at, self.route.label)
            self.handed_over = True
        return response

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.deadline is not None:
                self.deadline.__exit__(*exc)
        finally:
            if not self.handed_over:
                self.route.leave()


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
        token = current_request.set(request)
        try:
            return self._call(request)
        finally:
            current_request.reset(token)

    def _call(self, request: HttpRequest) -> Any:
        route, refused = _admit(request)
        if refused is not None:
            return refused
        if route is None:
            return _finished(request, self.get_response(request))
        with _Bounded(route, request) as bounded:
            return _finished(request, bounded.finish(self.get_response(request)))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            return await self._acall_in_context(request)
        finally:
            current_request.reset(token)

    async def _acall_in_context(self, request: HttpRequest) -> HttpResponse:
        if any(getattr(check, "may_block", _never)() for check in admission_checks):
            # in a thread, to keep the event loop free; a client that goes away meanwhile cancels this
            # request, not the thread, which may still take a permit: it is given back then
            admitted = asyncio.ensure_future(sync_to_async(_admit, thread_sensitive=False)(request))
            try:
                route, refused = await asyncio.shield(admitted)
            except asyncio.CancelledError:
                admitted.add_done_callback(_leave_if_admitted)
                raise
        else:
            route, refused = _admit(request)
        if refused is not None:
            return refused
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        if route is None:
            return _finished(request, await get_response(request))
        with _Bounded(route, request) as bounded:
            return _finished(request, bounded.finish(await get_response(request)))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DeadlineExceeded):
            return _timed_out(request)
        if isinstance(exception, CallTimeout):  # a breaker's own timeout: the dependency was too slow
            return _timed_out(request, "call_timeout")
        if isinstance(exception, CircuitOpenError):
            return _unavailable(exception.retry_after)
        if isinstance(exception, CredentialsUnavailable):  # STS down and the role's credentials expired
            return _unavailable(CREDENTIALS_RETRY_AFTER)
        return None
