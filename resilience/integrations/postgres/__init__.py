"""Postgres: statements bounded by the deadline and guarded by a breaker per alias; safe retries."""

from resilience.integrations import lazy_exports

__all__ = ["ReplicaRouter", "retry_transaction", "transaction_attempts"]
__getattr__ = lazy_exports(
    __name__, {"ReplicaRouter": "router", "retry_transaction": "transactions", "transaction_attempts": "transactions"}
)
