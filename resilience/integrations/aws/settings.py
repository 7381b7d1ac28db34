"""``RESILIENCE["AWS"]``: the options of the AWS integration that the ``aws`` retry policy has no key for.

Parsed by the settings object (its ``PARSERS`` entry) without importing botocore, so a typo is a
system-check error at start-up even where boto3 is only installed in production.
"""

from __future__ import annotations

from typing import Any

from resilience.core.validation import check_number, reject_unknown_keys
from resilience.exceptions import ConfigurationError

AWS_DEFAULTS: dict[str, float] = {
    # seconds: the first backoff ceiling after a throttling error (the aws policy's "base" is for
    # transient ones). botocore's standard mode uses 1 s for throttling and 0.05 s for the rest.
    "throttling_base": 1.0,
}


def parse_aws(value: Any, path: str) -> dict[str, float]:
    """The AWS options over their defaults, each checked."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must be a dict, got {type(value).__name__}")
    reject_unknown_keys(value, AWS_DEFAULTS, path)
    options = {**AWS_DEFAULTS, **value}
    check_number(f'{path}["throttling_base"]', options["throttling_base"], 0, 3600)
    return options
