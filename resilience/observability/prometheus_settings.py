"""``RESILIENCE["METRICS"]["PROMETHEUS"]``: who may scrape, and how many series a process keeps.

Parsed with the rest of ``METRICS`` (``metrics.SINK_SETTINGS``), whether or not the sink is in
``SINKS``, so a typo is a system-check error at start-up. No prometheus_client import here: the
settings check works without the extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resilience.core.client_ip import IPNetwork, parse_networks
from resilience.core.validation import check_number, over_defaults

PROMETHEUS_DEFAULTS: dict[str, Any] = {
    "allow": [],  # CIDRs whose (proxy-aware) client address may scrape without logging in; []: nobody by address
    "max_series": 1000,  # distinct label sets per counter and process; later names are counted as "_other"
    "export_interval": 5,  # seconds between two exports of the breakers' call totals to the counters
}


@dataclass(frozen=True)
class PrometheusConfig:
    allow: tuple[IPNetwork, ...] = ()
    max_series: int = PROMETHEUS_DEFAULTS["max_series"]
    export_interval: float = PROMETHEUS_DEFAULTS["export_interval"]


def parse_prometheus(value: Any, path: str) -> PrometheusConfig:
    """The Prometheus options over ``PROMETHEUS_DEFAULTS`` (None: all defaults); each error names its key."""
    options = over_defaults(value, PROMETHEUS_DEFAULTS, path)
    check_number(f'{path}["max_series"]', options["max_series"], 1, 1_000_000, integer=True)
    check_number(f'{path}["export_interval"]', options["export_interval"], 0.1, 300)
    return PrometheusConfig(
        allow=parse_networks(options["allow"], f'{path}["allow"]'),
        max_series=options["max_series"],
        export_interval=float(options["export_interval"]),
    )
