"""Postgres: statements bounded by the deadline and guarded by a breaker per alias; safe retries."""

from resilience.integrations import lazy_exports

__all__ = ["DatabaseUnavailable", "ReplicaRouter", "retry_transaction", "transaction_attempts"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "guards"))
