"""``RESILIENCE["AWS"]``: the options of the AWS integration that the ``aws`` retry policy has no key for.

Parsed by the settings object (its ``PARSERS`` entry) without importing botocore or cryptography,
so a typo is a system-check error at start-up even where boto3 is only installed in production.

``RESILIENCE["AWS"]["CREDENTIALS"]`` configures the role whose credentials are refreshed ahead of
expiry and shared, encrypted, through Redis (``resilience.integrations.aws.credentials``). Its
``encryption_key`` is checked here for shape only; the key itself is resolved (``env:NAME`` read
from the environment) when it is used, by ``encryption_key()``, so a missing variable is reported
by its own check (``resilience.E015``) and never breaks the rest of the AWS settings.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Any

from resilience.core.validation import check_number, over_defaults
from resilience.exceptions import ConfigurationError

AWS_DEFAULTS: dict[str, Any] = {
    # seconds: the first backoff ceiling after a throttling error (the aws policy's "base" is for
    # transient ones). botocore's standard mode uses 1 s for throttling and 0.05 s for the rest.
    "throttling_base": 1.0,
    # seconds: a failover_client region silent for its share of the deadline counts one failure of its
    # breaker when that share was at least this long (shorter: a caller's short deadline, counted nothing)
    "failover_min_share": 0.5,
    # service -> {"regions": [...], "operations": [...], "endpoint_urls": {...}}: failover_client(service)'s
    # defaults, so the regions of each service live in settings; arguments of failover_client() win
    "FAILOVER": {},
    "CREDENTIALS": None,  # the role refreshed by resilience.tasks.refresh_aws_credentials; None: off
}
CREDENTIALS_DEFAULTS: dict[str, Any] = {
    "role_arn": None,  # required
    "region": None,  # required: the regional STS endpoint https://sts.<region>.amazonaws.com is used
    "sts_endpoint_url": None,  # overrides that endpoint (a VPC endpoint, moto in tests)
    "session_name": "django-resilience",
    "duration": 3600,  # seconds the assumed credentials live (STS allows 900 to 43200)
    "refresh_margin": 900,  # seconds: refreshed when less than this would remain before the next run
    "schedule": 300,  # seconds between two runs of the beat entry (its task message expires as fast)
    "encryption_key": None,  # a Fernet key, or "env:NAME" to read it from the environment
}
ENV_PREFIX = "env:"
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")


@dataclass(frozen=True)
class CredentialsConfig:
    """The validated ``RESILIENCE["AWS"]["CREDENTIALS"]``; ``encryption_key`` is the setting as
    written (a key or ``env:NAME``), never logged: ``repr`` leaves it out."""

    role_arn: str
    region: str
    sts_endpoint_url: str | None
    session_name: str
    duration: int
    refresh_margin: float
    schedule: float
    encryption_key: str | None

    @property
    def endpoint_url(self) -> str:
        """The STS endpoint: the regional one (the global endpoint is a single region, us-east-1)."""
        return self.sts_endpoint_url or f"https://sts.{self.region}.amazonaws.com"

    def __repr__(self) -> str:
        return f"CredentialsConfig(role_arn={self.role_arn!r}, region={self.region!r}, duration={self.duration})"


def parse_aws(value: Any, path: str) -> dict[str, Any]:
    """The AWS options over their defaults, each checked; ``CREDENTIALS`` a ``CredentialsConfig`` or None."""
    options = over_defaults(value, AWS_DEFAULTS, path)
    check_number(f'{path}["throttling_base"]', options["throttling_base"], 0, 3600)
    check_number(f'{path}["failover_min_share"]', options["failover_min_share"], 0.05, 60)
    options["FAILOVER"] = parse_failover(options["FAILOVER"], f'{path}["FAILOVER"]')
    if options["CREDENTIALS"] is not None:
        options["CREDENTIALS"] = parse_credentials(options["CREDENTIALS"], f'{path}["CREDENTIALS"]')
    return options


@dataclass(frozen=True)
class FailoverConfig:
    """One service's entry of ``RESILIENCE["AWS"]["FAILOVER"]``: regions (the first is the primary),
    the operations declared safe to fail over, and optional endpoint URLs by region."""

    regions: tuple[str, ...]
    operations: frozenset[str]
    endpoint_urls: dict[str, str]


FAILOVER_DEFAULTS: dict[str, Any] = {"regions": None, "operations": None, "endpoint_urls": {}}
SERVICE = re.compile(r"[a-z][a-z0-9-]{1,62}")
OPERATION = re.compile(r"[a-z][a-z0-9_]{0,127}")


def parse_failover(value: Any, path: str) -> dict[str, FailoverConfig]:
    """``RESILIENCE["AWS"]["FAILOVER"]`` checked without botocore: names and shapes here; whether each
    operation exists and may fail over is ``resilience.E018`` (with botocore's service model)."""
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must map service names to their regions and operations, got {type(value).__name__}")
    parsed = {}
    for service, entry in value.items():
        where = f"{path}[{service!r}]"
        _text(service, SERVICE, where, "a boto3 service name such as 'secretsmanager' (the key)")
        o = over_defaults(entry, FAILOVER_DEFAULTS, where)
        regions = o["regions"]
        if isinstance(regions, str) or not isinstance(regions, list | tuple) or not regions:
            raise ConfigurationError(f'{where}["regions"] must be a list of region names, the primary first')
        for region in regions:
            _text(region, REGION, f'{where}["regions"]', "a list of AWS region names such as 'eu-west-1'")
        if len(set(regions)) != len(regions):
            raise ConfigurationError(f'{where}["regions"] must not name a region twice, got {list(regions)!r}')
        operations = o["operations"]
        if isinstance(operations, str) or not isinstance(operations, list | tuple | set | frozenset) or not operations:
            raise ConfigurationError(f'{where}["operations"] must be a list of client method names such as "get_secret_value"')
        for operation in operations:
            _text(operation, OPERATION, f'{where}["operations"]', 'client method names such as "get_secret_value"')
        urls = o["endpoint_urls"]
        if not isinstance(urls, dict) or not all(
            r in regions and isinstance(u, str) and u.startswith(("https://", "http://")) for r, u in urls.items()
        ):
            raise ConfigurationError(f'{where}["endpoint_urls"] must map some of its regions to http(s):// URLs')
        parsed[service] = FailoverConfig(tuple(regions), frozenset(operations), dict(urls))
    return parsed


def _text(value: Any, pattern: re.Pattern[str], path: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigurationError(f"{path} must be {what}, got {value!r}")
    return value


def parse_credentials(value: Any, path: str) -> CredentialsConfig:
    """``RESILIENCE["AWS"]["CREDENTIALS"]`` checked key by key; messages never show the encryption key."""
    o = over_defaults(value, CREDENTIALS_DEFAULTS, path)  # called only when CREDENTIALS is not None
    arn = _text(o["role_arn"], ROLE_ARN, f'{path}["role_arn"]', "an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    region = _text(o["region"], REGION, f'{path}["region"]', "an AWS region name such as 'eu-west-1'")
    name = _text(o["session_name"], SESSION_NAME, f'{path}["session_name"]', "2-64 characters of [A-Za-z0-9_+=,.@-]")
    url = o["sts_endpoint_url"]
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise ConfigurationError(f'{path}["sts_endpoint_url"] must be None or an http(s):// URL, got {url!r}')
    check_number(f'{path}["duration"]', o["duration"], 900, 43_200, integer=True)
    check_number(f'{path}["refresh_margin"]', o["refresh_margin"], 60, 43_200)
    check_number(f'{path}["schedule"]', o["schedule"], 0, 43_200, low_open=True)
    key = o["encryption_key"]
    if key is not None and (not isinstance(key, str) or not key):
        kind = type(key).__name__
        raise ConfigurationError(f'{path}["encryption_key"] must be a Fernet key or "env:NAME" (a {kind} is neither)')
    return CredentialsConfig(arn, region, url, name, o["duration"], float(o["refresh_margin"]), float(o["schedule"]), key)


def encryption_key(config: CredentialsConfig) -> bytes:
    """The Fernet key of the shared copy: the setting, or the environment variable it names.

    Raises ConfigurationError when it is missing or is not a Fernet key (32 url-safe base64
    bytes: ``cryptography.fernet.Fernet.generate_key()``); the message never contains the value."""
    where = 'RESILIENCE["AWS"]["CREDENTIALS"]["encryption_key"]'
    key = config.encryption_key
    if key is None:
        raise ConfigurationError(f"{where} is not set: the shared credentials are stored encrypted with it")
    if key.startswith(ENV_PREFIX):
        variable = key[len(ENV_PREFIX) :]
        key = os.environ.get(variable, "")
        if not key:
            raise ConfigurationError(f"{where} names the environment variable {variable!r}, which is not set")
        where = f"the environment variable {variable!r} ({where})"
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"{where} is not a Fernet key (cryptography.fernet.Fernet.generate_key())")
    return key.encode("ascii")
