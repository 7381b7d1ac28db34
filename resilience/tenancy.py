"""The caller's security context: the current request, set by ``ResilienceMiddleware`` for the
duration of the request, from which fallbacks derive whose data they may serve."""

from __future__ import annotations

import contextvars
from typing import Any

current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("resilience_request", default=None)


def scope_key(scope: str) -> str | None:
    """``"public"``: one key for everyone; ``"tenant"``: the request's tenant; ``"user"``: tenant and
    user. None when the scope cannot be established (no request, anonymous user, no tenant)."""
    if scope == "public":
        return "public"
    request = current_request.get()
    if request is None:
        return None
    from resilience.ratelimit.admission import tenant

    tid = tenant(request)
    if tid is None:
        return None
    if scope == "tenant":
        return f"t:{tid}"
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return f"t:{tid}|u:{user.pk}"
