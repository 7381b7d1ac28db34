"""``RESILIENCE["ENTRA"]``: how long the Entra integration lives on cached keys, and how often it asks again.

Parsed by the settings object (its ``PARSERS`` entry) without importing django-auth-adfs, so a typo is
a system-check error at start-up even where that package is only installed in production.
"""

from __future__ import annotations

from typing import Any

from resilience.core.validation import check_number, over_defaults

ENTRA_DEFAULTS: dict[str, float] = {
    "max_staleness": 7 * 86_400,  # seconds cached metadata and keys stay usable while the provider is down
    "retry_interval": 30.0,  # seconds after a failed fetch before the provider is asked again
    "kid_refresh_interval": 60.0,  # seconds between two refreshes for tokens naming an unknown key id
}
MAX_SECONDS = 365 * 86_400


def parse_entra(value: Any, path: str) -> dict[str, float]:
    """The ENTRA options over their defaults; every one a number of seconds above 0."""
    options = over_defaults(value, ENTRA_DEFAULTS, path)
    for key, seconds in options.items():
        check_number(f'{path}["{key}"]', seconds, 0, MAX_SECONDS, low_open=True)
    return options
