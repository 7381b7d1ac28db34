"""DRF's own kind of tenant throttle (configuration ``drf``), apart from views.py: DRF imports the
throttle classes of its settings while ``rest_framework.views`` itself is being imported."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import SimpleRateThrottle


class TenantHeaderThrottle(SimpleRateThrottle):
    """A ``SimpleRateThrottle`` keyed on the ``X-Tenant`` header (no header, no limit)."""

    scope = "tenant"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        tenant = request.META.get("HTTP_X_TENANT")
        return None if tenant is None else self.cache_format % {"scope": self.scope, "ident": tenant}
