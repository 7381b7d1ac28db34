"""Entra ID through django-auth-adfs, failing closed: the backend and DRF authentication to use.

    AUTHENTICATION_BACKENDS = ["resilience.integrations.entra.ResilientAccessTokenBackend", ...]
    REST_FRAMEWORK = {"DEFAULT_AUTHENTICATION_CLASSES": ["resilience.integrations.entra.ResilientAccessTokenAuthentication"]}

The installed ``ResilientProviderConfig`` (see ``entra_config``) keeps working from cached public
keys while the provider is down. When authentication is impossible because of the outage, DRF
answers ``503`` with ``Retry-After`` and a generic body: never a 500, never an authenticated user.
Invalid tokens are still refused (401) exactly as before.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DataError

try:
    import jwt
    from django_auth_adfs import backend as adfs_backend
    from django_auth_adfs import config as adfs_config
    from django_auth_adfs import views as adfs_views
    from django_auth_adfs.backend import AdfsAccessTokenBackend
    from django_auth_adfs.rest_framework import AdfsAccessTokenAuthentication
    from rest_framework import exceptions, status
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without django-auth-adfs
    from resilience.integrations.extras import missing

    raise missing(exc.name or "django_auth_adfs", "resilience.integrations.entra.backend") from exc

from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.exceptions import EntraUnavailable
from resilience.integrations.entra.provider import ResilientProviderConfig
from resilience.middleware import answered_by_library
from resilience.observability.events import emit

UNAVAILABLE = "Authentication is temporarily unavailable. Try again shortly."
REFUSED = "Invalid or missing credentials."  # one answer for every failed check: no hint, no user enumeration
# Installing is check-then-replace on module globals that django-auth-adfs's backend reads in the
# middle of a request: racing first requests each built a config, and a request whose config was
# replaced by an empty one between load_config() and signature checking was a 500.
_installing = threading.Lock()


def install() -> ResilientProviderConfig:
    """Replace django-auth-adfs's provider configuration (in every module that bound it)."""
    with _installing:
        return _install()


def _install() -> ResilientProviderConfig:
    options = resilience_settings.ENTRA  # parsed and checked: resilience.integrations.entra.settings
    client = None
    if resilience_settings.REDIS is not None:
        from resilience.storage.redis.client import shared_client

        client = shared_client()
    provider = ResilientProviderConfig(redis_client=client, prefix=resilience_settings.KEY_PREFIX, **options)
    for module in (adfs_config, adfs_backend, adfs_views):
        module.provider_config = provider  # type: ignore[attr-defined]
    return provider


def provider() -> ResilientProviderConfig:
    """The process's one provider configuration, installed by the first request that needs it."""
    current = adfs_backend.provider_config
    if isinstance(current, ResilientProviderConfig):
        return current
    with _installing:  # however many first requests race, one installs; the others use its config
        current = adfs_backend.provider_config
        return current if isinstance(current, ResilientProviderConfig) else _install()


class ResilientAccessTokenBackend(AdfsAccessTokenBackend):  # type: ignore[misc]
    """django-auth-adfs's access-token backend that touches the provider only when there is a token,
    and refreshes keys (rate limited) when a token names a key id it does not know."""

    def authenticate(self, request: Any = None, access_token: Any = None, **kwargs: Any) -> Any:
        if not access_token:
            return None  # password logins and others never wait on the identity provider
        try:  # a JWT is ASCII; the stock backend's .decode() turned other bytes into a 500
            token = access_token.decode("ascii") if isinstance(access_token, bytes) else str(access_token)
        except UnicodeDecodeError:
            return None
        config = provider()
        config.load_config()  # EntraUnavailable propagates: the caller answers 503
        if not config.signing_keys or adfs_backend.provider_config is not config:
            raise EntraUnavailable(retry_after=1.0)  # fail closed (503), never a TypeError (500) in the stock check
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return None
        if isinstance(kid, str) and kid not in config.kids:
            config.refresh_for_kid(kid)
        try:
            return self.process_access_token(token)
        except (ValidationError, DataError) as exc:
            # A validly signed token whose claims make no user (a upn that is a list, 5,000 characters for a
            # 150-character username): refused like any bad token, the same 401, never a 500. A database
            # outage (OperationalError) is not caught: it answers as one.
            emit(Event("auth", "refused", "entra", {"reason": f"claims: {type(exc).__name__}"}))
            return None


class AuthenticationUnavailable(exceptions.APIException):  # type: ignore[misc]
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = UNAVAILABLE
    default_code = "authentication_unavailable"

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = max(int(wait), 1)  # DRF's exception handler turns ``wait`` into Retry-After


class ResilientAccessTokenAuthentication(AdfsAccessTokenAuthentication):  # type: ignore[misc]
    """Bearer tokens as django-auth-adfs checks them, with secure defaults: every refusal is the same
    401 (``WWW-Authenticate: Bearer``, one generic message, whichever check failed: malformed header,
    bad signature, expired, wrong audience, foreign tenant, inactive user); an outage is a 503."""

    def authenticate(self, request: Any) -> Any:
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed as exc:
            emit(Event("auth", "refused", "entra", {"reason": str(exc.detail)[:80]}))  # the reason stays in our logs
            answered_by_library(request)  # that event is the log line (summarised), not one per request
            raise exceptions.AuthenticationFailed(REFUSED) from None
        except EntraUnavailable as exc:
            emit(Event("auth", "unavailable", "entra", {"retry_after": round(exc.retry_after, 1)}))
            answered_by_library(request)
            raise AuthenticationUnavailable(exc.retry_after) from None
