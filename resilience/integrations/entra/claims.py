"""Entra ID helpers. This release: the tenant of a request, for ``RESILIENCE["TENANT_RESOLVER"]``.

``entra_tenant`` reads the ``tid`` claim of a request already authenticated by django-auth-adfs:
the DRF access token (``request.auth``, whose signature that library has verified) or the claims
kept in the session. It never authenticates anything itself and returns None when unsure.
"""

from __future__ import annotations

import base64
import contextvars
import json
from typing import Any

MAX_TENANT = 128


def _claims_of_token(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16_384:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def entra_tenant(request: Any) -> str | None:
    """The Entra tenant id (``tid``) of an authenticated request, or None."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    claims: dict[str, Any] | None = None
    token = getattr(request, "auth", None)
    if isinstance(token, bytes):
        token = token.decode("ascii", "replace")
    if isinstance(token, str):
        claims = _claims_of_token(token)
    if claims is None:
        session = getattr(request, "session", None)
        stored = session.get(SESSION_KEY) if session is not None else None
        claims = stored if isinstance(stored, dict) else None
    tid = claims.get("tid") if claims else None
    return tid if isinstance(tid, str) and 0 < len(tid) <= MAX_TENANT else None


# Session logins (django-auth-adfs's authorization-code flow): its ``post_authenticate`` signal
# carries the claims but not the request; Django's ``user_logged_in`` carries the request. Both
# fire in the same request, so the tenant is handed from one to the other through a context var.
_claims: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("resilience_adfs_claims", default=None)
SESSION_KEY = "adfs_claims"


def remember_claims(sender: Any, user: Any = None, claims: dict[str, Any] | None = None, **kwargs: Any) -> None:
    tid = (claims or {}).get("tid")
    _claims.set({"tid": tid} if isinstance(tid, str) and 0 < len(tid) <= MAX_TENANT else None)


def store_claims_in_session(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    claims = _claims.get()
    session = getattr(request, "session", None)
    if claims and session is not None:
        session[SESSION_KEY] = claims  # public, non-secret: only the tenant id
        _claims.set(None)


def connect_session_claims() -> None:
    """Wire the two signals (called at start-up when django-auth-adfs is configured)."""
    from django.contrib.auth.signals import user_logged_in
    from django_auth_adfs.signals import post_authenticate

    post_authenticate.connect(remember_claims, dispatch_uid="resilience.adfs_claims")
    user_logged_in.connect(store_claims_in_session, dispatch_uid="resilience.adfs_session_claims")
