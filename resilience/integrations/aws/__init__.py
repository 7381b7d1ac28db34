"""AWS (boto3/botocore): ``botocore_config()`` for clients, so the ``aws`` retry policy is the only retry layer."""

from resilience.integrations import lazy_exports

__all__ = ["NO_RETRIES", "botocore_config"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "config"))
