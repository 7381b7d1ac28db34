"""Parse a caller's timeout: ``X-Request-Timeout: 2.5`` (seconds) or ``grpc-timeout: 250m``.

Anything malformed, negative, zero, NaN, infinite or oversized is ignored (None), never an error:
the route's own timeout applies then.
"""

from __future__ import annotations

import math
import re

_GRPC = re.compile(r"([0-9]{1,8})([HMSmun])")
_SECONDS = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")  # float()'s "1_0", "+1", "inf": no
_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
MAX_HEADER = 32


def parse_seconds(value: str | None) -> float | None:
    """``X-Request-Timeout`` value in seconds, or None. ASCII only: ``float()`` would read "١" (Arabic-Indic one)."""
    if not value or len(value) > MAX_HEADER or not value.isascii():
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text) is None:
        return None
    seconds = float(text)
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def parse_grpc(value: str | None) -> float | None:
    """``grpc-timeout`` (1-8 digits and a unit: H M S m u n) in seconds, or None."""
    if not value or len(value) > MAX_HEADER or not value.isascii():
        return None
    match = _GRPC.fullmatch(value.strip())
    if match is None:
        return None
    seconds = int(match.group(1)) * _GRPC_UNITS[match.group(2)]
    return seconds if seconds > 0 else None
