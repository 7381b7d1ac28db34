"""``resilience.aws``: the AWS names of the public interface (``protect``, ``session``,
``failover_client``, ``role_session``, ...), which live in ``resilience.integrations.aws`` with the
other adapters. Importing this module imports neither boto3 nor botocore: each name is imported on
first use."""

from resilience.integrations import aws as _aws

__all__ = _aws.__all__
__getattr__ = _aws.__getattr__
