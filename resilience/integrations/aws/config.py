"""botocore client configuration with botocore's own retries off, so the ``aws`` policy is the one layer.

One retry layer only: botocore retries on its own (up to 5 attempts in its legacy mode), so wrapping
a default client in ``retry("aws")`` would multiply attempts (3 × 5 = 15 requests per call).
Give clients ``botocore_config()`` and let the ``aws`` policy (with its budget and deadline) retry.
"""

from __future__ import annotations

try:
    from botocore.config import Config
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without botocore
    from resilience.integrations.extras import missing

    raise missing("botocore", "resilience.integrations.aws.config") from exc

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
CONNECT_TIMEOUT = 2.0  # seconds: a protected session's default; botocore's is 60 s, and no deadline can cut it


def botocore_config(config: Config | None = None) -> Config:
    """``config`` (or a new one) with botocore's own retries switched off."""
    return config.merge(NO_RETRIES) if config is not None else NO_RETRIES


def retries_off(config: Config | None) -> bool:
    """Whether botocore makes exactly one attempt per call with ``config`` (a client's resolved
    ``meta.config``: botocore folds ``max_attempts``, env vars and config files into
    ``retries["total_max_attempts"]``)."""
    retries = getattr(config, "retries", None) or {}
    return retries.get("total_max_attempts") == 1
