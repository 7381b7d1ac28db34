"""AWS (boto3/botocore): ``protect(session_or_client)`` and ``session()`` put every call through a
breaker per service and region, the ``aws`` retry policy and the deadline; ``failover_client()``
moves declared safe operations to other regions; ``role_session()`` signs with a role's credentials
refreshed by Celery and shared through Redis, encrypted; ``botocore_config()`` switches botocore's own
retries off for clients used with ``retry("aws")`` by hand."""

from resilience.integrations import lazy_exports

__all__ = [
    "NO_RETRIES", "CredentialsUnavailable", "FailoverClient", "botocore_config", "failover_client", "protect",
    "role_session", "session",
]  # fmt: skip
__getattr__ = lazy_exports(
    __name__,
    {"NO_RETRIES": "config", "botocore_config": "config", "protect": "protection", "session": "protection",
     "FailoverClient": "failover", "failover_client": "failover", "role_session": "shared_session",
     "CredentialsUnavailable": "credentials"},
)  # fmt: skip
