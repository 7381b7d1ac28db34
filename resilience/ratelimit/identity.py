"""Who is counted: the client address of a request (proxy-aware) and client-supplied identities
(usernames) in the one spelling every key is built from.

``RESILIENCE["TRUSTED_PROXIES"]`` (parsed by ``core.client_ip.parse_networks``) says whose
``X-Forwarded-For`` is believed; ``RESILIENCE["RATE_LIMITS"]["ipv6_prefix"]`` how IPv6 clients
are grouped.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from django.http import HttpRequest

from resilience.conf import resilience_settings
from resilience.core.client_ip import client_address_key, is_trusted, parse_ip
from resilience.core.validation import is_number

MAX_RAW_IDENTITY = 4096  # characters of a client's identity looked at (usernames are far shorter)
MAX_IDENTITY = 1024  # characters of a normalised identity kept (hashed into the key)
INVISIBLE = "\x00invisible"  # every identity made only of invisible characters counts as this one


def peer_is_trusted(request: HttpRequest) -> bool:
    """True when the request's immediate peer (``REMOTE_ADDR``) is in ``TRUSTED_PROXIES``."""
    peer = parse_ip(request.META.get("REMOTE_ADDR") or "")
    return peer is not None and is_trusted(peer, resilience_settings.TRUSTED_PROXIES)


def client_address(request: HttpRequest) -> str:
    """The client's rate-limit identity: its address (IPv6: its /64), proxies handled as configured.
    Worked out once per request (the middleware and every throttle ask)."""
    cached = getattr(request, "_resilience_client", None)
    if cached is None:
        meta = request.META
        cached = client_address_key(
            meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), resilience_settings.TRUSTED_PROXIES,
            resilience_settings.RATE_LIMITS.ipv6_prefix,
        )  # fmt: skip
        request._resilience_client = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]


def normalise(identity: str) -> str:
    """One spelling per identity, applied before any key is built: NFKC, invisible format characters
    (zero-width spaces and joiners, soft hyphens, bidi marks) removed, case-folded, trimmed, at most
    ``MAX_IDENTITY`` characters. "ÄLICE ", "älice", "ａｌｉｃｅ" and "al\u200bice" are one identity.
    Letters of other scripts that merely look alike stay distinct: the authentication backend sees
    them as other users, so counting them apart lets no one past a limit."""
    stripped = identity.strip()  # before cutting: 5,000 spaces and "victim" is "victim" to DRF's CharField
    text = unicodedata.normalize("NFKC", stripped[:MAX_RAW_IDENTITY])
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
        text = unicodedata.normalize("NFKC", text.casefold())
    text = text.casefold().strip()[:MAX_IDENTITY]
    return text if text or not stripped else INVISIBLE  # never "no identity" for text that was there


def identity_text(value: Any) -> str | None:
    """A client-supplied identity (a username from a JSON or form body) as the text the authentication
    backend will see, whatever its JSON type: DRF's ``CharField`` turns ``12345`` into ``"12345"``.
    Lists, objects and booleans (refused by the serializer anyway) count as their JSON. Normalised;
    None when empty."""
    if isinstance(value, str):
        text = value
    elif is_number(value) or isinstance(value, float):  # NaN too: str() as the CharField would
        text = str(value)
    elif value is None:
        return None
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)[:MAX_RAW_IDENTITY]
        except (TypeError, ValueError, RecursionError):
            text = type(value).__name__
    text = normalise(text)
    return text or None
