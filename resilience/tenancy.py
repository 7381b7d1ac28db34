"""The caller's security context: the current request (set by ``ResilienceMiddleware`` for the
duration of the request), its tenant (``RESILIENCE["TENANT_RESOLVER"]``), and the scope keys
fallbacks derive from them to know whose data they may serve."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from typing import Any

from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.core.validation import import_path
from resilience.exceptions import ConfigurationError
from resilience.observability.events import emit

current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("resilience_request", default=None)
TenantResolver = Callable[[Any], Any]
_NOT_YET = object()
LOG_TENANT = "_resilience_log_tenant"  # the tenant a DRF Request resolved, on its Django request, for log lines


def parse_resolver(value: Any, path: str) -> TenantResolver:
    """The parser of ``RESILIENCE["TENANT_RESOLVER"]`` (``conf.PARSERS``): the dotted path imported,
    and callable. Errors name ``path`` (system check ``resilience.E014``)."""
    resolver = import_path(value, path)
    if not callable(resolver):
        raise ConfigurationError(f"{path} {value!r} is not callable")
    return resolver  # type: ignore[no-any-return]


def tenant_of(request: Any) -> str | None:
    """The request's tenant id: ``TENANT_RESOLVER`` applied once per request object (ask after
    authentication: resolvers read the user). A resolver that fails, or cannot be imported, counts
    as no tenant: never a 500 (``resilience.E014`` reports a broken one at start-up)."""
    # the object's own attribute: a DRF Request would otherwise answer with its HttpRequest's
    cached: str | None | object = getattr(request, "__dict__", {}).get("_resilience_tenant", _NOT_YET)
    if cached is not _NOT_YET:
        return cached  # type: ignore[return-value]
    try:
        value = resilience_settings.TENANT_RESOLVER(request)
    except Exception as exc:  # noqa: BLE001 - a broken resolver must not turn into a 500
        emit(Event("tenancy", "resolver_failed", "TENANT_RESOLVER", {"error": type(exc).__name__}))  # summarised
        value = None
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):  # a primary key or a UUID, as text
        value = str(value)
    tenant = value if isinstance(value, str) and value else None
    try:
        request._resilience_tenant = tenant
        inner = request.__dict__.get("_request")  # a DRF Request: tell the Django request's log lines too
        if tenant is not None and inner is not None:
            inner.__dict__[LOG_TENANT] = tenant  # for observability.logs only; this function's cache is untouched
    except AttributeError:  # an object without attributes of its own: resolved again when asked again
        pass
    return tenant


def scope_key(scope: str) -> str | None:
    """``"public"``: one key for everyone; ``"tenant"``: the request's tenant; ``"user"``: tenant and
    user. None when the scope cannot be established (no request, anonymous user, no tenant)."""
    if scope == "public":
        return "public"
    request = current_request.get()
    if request is None:
        return None
    tid = tenant_of(request)
    if tid is None:
        return None
    if scope == "tenant":
        return f"t:{tid}"
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return f"t:{tid}|u:{user.pk}"
