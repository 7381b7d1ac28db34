"""Entra ID helpers. This release: the tenant of a request, for ``RESILIENCE["TENANT_RESOLVER"]``.

``entra_tenant`` reads the ``tid`` claim of a request already authenticated by django-auth-adfs:
the DRF access token (``request.auth``, whose signature that library has verified) or the claims
kept in the session. It never authenticates anything itself and returns None when unsure.
"""

from __future__ import annotations

import base64
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
        stored = session.get("adfs_claims") if session is not None else None
        claims = stored if isinstance(stored, dict) else None
    tid = claims.get("tid") if claims else None
    return tid if isinstance(tid, str) and 0 < len(tid) <= MAX_TENANT else None
