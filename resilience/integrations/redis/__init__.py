"""Redis through django-redis: ``CLIENT_CLASS = "resilience.integrations.redis.ResilientClient"``."""

from resilience.integrations import lazy_exports

__all__ = ["ResilientClient"]
__getattr__ = lazy_exports(__name__, {"ResilientClient": "client"})
