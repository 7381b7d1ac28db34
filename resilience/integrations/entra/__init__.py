"""Entra ID through django-auth-adfs, failing closed: the backend, the DRF authentication, the tenant."""

from resilience.integrations import lazy_exports

__all__ = ["ResilientAccessTokenAuthentication", "ResilientAccessTokenBackend", "entra_tenant"]
__getattr__ = lazy_exports(
    __name__,
    {"ResilientAccessTokenBackend": "backend", "ResilientAccessTokenAuthentication": "backend", "entra_tenant": "claims"},
)
