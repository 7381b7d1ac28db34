"""Integrity of what the app reads back from a shared Redis: JSON sealed with an HMAC.

Anyone who can write to the Redis the app shares (often a cache that other applications use too)
could plant values there. Values the app's trust depends on (the IdP's signing keys, fallback data
served to users) are therefore stored sealed: ``seal`` returns JSON signed with HMAC-SHA256 under
``RESILIENCE["SIGNING_KEY"]`` (default: one derived from ``SECRET_KEY``), with a purpose salt so a
value sealed for one use never verifies for another; ``unseal`` returns ``None`` for anything that
does not verify or decode. Django's ``signing`` does the cryptography; nothing is ever unpickled.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing

from resilience.conf import resilience_settings

SALT = "resilience.shared"


def _key() -> str:
    configured = resilience_settings.SIGNING_KEY
    return configured if configured else settings.SECRET_KEY  # salted per purpose: a derived key, never SECRET_KEY itself


def seal(value: Any, purpose: str) -> str:
    """``value`` (JSON-serialisable) as signed text, verifiable only by ``unseal(…, purpose)``."""
    return signing.dumps(value, key=_key(), salt=f"{SALT}:{purpose}", compress=True)


def unseal(text: Any, purpose: str) -> Any | None:
    """The value sealed for ``purpose``, or ``None`` when ``text`` is absent, forged, truncated or not ours."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(text, str) or not text:
        return None
    try:
        return signing.loads(text, key=_key(), salt=f"{SALT}:{purpose}")
    except (signing.BadSignature, ValueError, TypeError, OverflowError, RecursionError):
        return None
