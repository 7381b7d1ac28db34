"""``RESILIENCE["METRICS"]["CLOUDWATCH"]``: the settings of ``CloudWatchSink`` (``PutMetricData``).

Parsed with the rest of ``METRICS`` (``metrics.SINK_SETTINGS``), whether or not the sink is in
``SINKS``, so a typo is a system-check error at start-up. Namespace and dimensions obey the same
CloudWatch rules as the EMF sink's (``emf_settings``). No boto3 import here: the settings check
works without the extra installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from resilience.core.validation import check_number, over_defaults
from resilience.exceptions import ConfigurationError
from resilience.observability.emf_settings import check_namespace, parse_dimensions

REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]+")  # us-east-1, eu-central-2, us-gov-west-1, cn-north-1

CLOUDWATCH_DEFAULTS: dict[str, Any] = {
    "namespace": "Resilience",  # the CloudWatch namespace of every metric
    "dimensions": {},  # static dimensions on every metric, e.g. {"Service": "orders", "Environment": "prod"}
    "region": None,  # None: boto3's own resolution (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)
    "endpoint_url": None,  # None: the region's public endpoint; or a VPC endpoint (tests: moto)
    "high_resolution": False,  # False: one call per 60 s, StorageResolution 60; True: per second, StorageResolution 1
    "queue_size": 100,  # batches (PutMetricData calls) waiting for the sender thread; past it they are dropped and counted
    "max_series": 10_000,  # distinct (metric, tags) per interval; later ones are dropped and counted
}


@dataclass(frozen=True)
class CloudWatchConfig:
    namespace: str = CLOUDWATCH_DEFAULTS["namespace"]
    dimensions: tuple[tuple[str, str], ...] = ()
    region: str | None = None
    endpoint_url: str | None = None
    high_resolution: bool = False
    queue_size: int = CLOUDWATCH_DEFAULTS["queue_size"]
    max_series: int = CLOUDWATCH_DEFAULTS["max_series"]

    @property
    def interval(self) -> float:
        """Seconds aggregated into one data point per series: 1 in high resolution, else 60."""
        return 1.0 if self.high_resolution else 60.0

    @property
    def storage_resolution(self) -> int:
        return 1 if self.high_resolution else 60


def parse_cloudwatch(value: Any, path: str) -> CloudWatchConfig:
    """The CloudWatch options over ``CLOUDWATCH_DEFAULTS`` (None: all defaults); each error names its key."""
    options = over_defaults(value, CLOUDWATCH_DEFAULTS, path)
    region = options["region"]
    if region is not None and (not isinstance(region, str) or len(region) > 50 or not REGION.fullmatch(region)):
        raise ConfigurationError(
            f'{path}["region"] must be None (boto3 resolves it) or a region such as "eu-west-1", got {str(region)[:100]!r}'
        )
    endpoint = options["endpoint_url"]
    if endpoint is not None and not _is_endpoint(endpoint):
        raise ConfigurationError(  # the value is not shown: a URL may carry a password
            f'{path}["endpoint_url"] must be None or an http(s)://host[:port] URL without user or password'
        )
    if not isinstance(options["high_resolution"], bool):
        raise ConfigurationError(f'{path}["high_resolution"] must be True or False, got {options["high_resolution"]!r}')
    check_number(f'{path}["queue_size"]', options["queue_size"], 1, 10_000, integer=True)
    check_number(f'{path}["max_series"]', options["max_series"], 1, 1_000_000, integer=True)
    return CloudWatchConfig(
        namespace=check_namespace(options["namespace"], f'{path}["namespace"]'),
        dimensions=parse_dimensions(options["dimensions"], f'{path}["dimensions"]'),
        region=region,
        endpoint_url=endpoint,
        high_resolution=options["high_resolution"],
        queue_size=options["queue_size"],
        max_series=options["max_series"],
    )


def _is_endpoint(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2048 or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username and not parts.password
