"""``role_session()``: boto3 sessions whose clients sign with the shared role credentials.

Why ``register_component("credential_provider", ...)``: it is botocore's public slot for where a
session's credentials come from (the resolver ``Session.get_credentials()`` asks, lazily, at the
first client), so nothing here touches ``Session._credentials``, which is private. The resolver
holds one provider only, so no other source (environment variables, a profile) can be picked
instead of the role by accident.
"""

from __future__ import annotations

from typing import Any

try:
    import boto3
    from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
    from botocore.session import Session as BotocoreSession
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without boto3
    from resilience.integrations.extras import missing

    raise missing("boto3", "resilience.integrations.aws.shared_session") from exc

from resilience.exceptions import ConfigurationError
from resilience.integrations.aws.credentials import credentials
from resilience.integrations.aws.protection import protect


class SharedRoleProvider(CredentialProvider):  # type: ignore[misc]
    """A botocore credential provider that answers with the process's role credentials."""

    METHOD = "resilience-shared-role"
    CANONICAL_NAME = "custom-resilience-shared-role"

    def load(self) -> RefreshableCredentials:
        return credentials()


def role_session(**kwargs: Any) -> boto3.session.Session:
    """A protected ``boto3.Session`` (``region_name``, ``profile_name``... as boto3's) whose clients
    sign with the shared role credentials. Credentials given here would override them: refused."""
    given = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "botocore_session"} & kwargs.keys()
    if given:
        raise ConfigurationError(f"role_session() takes its credentials from the shared copy, not {sorted(given)}")
    core = BotocoreSession()
    core.register_component("credential_provider", CredentialResolver(providers=[SharedRoleProvider()]))
    return protect(boto3.session.Session(botocore_session=core, **kwargs))
