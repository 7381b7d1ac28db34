"""Outbound HTTP with ``requests``: ``ResilientSession``, a breaker per host, retries, deadlines."""

from resilience.integrations import lazy_exports

__all__ = ["ResilientSession"]
__getattr__ = lazy_exports(__name__, {"ResilientSession": "session"})
