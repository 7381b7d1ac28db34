"""Rate policies: the one parser of rates, and ``RESILIENCE["RATE_LIMITS"]``.

A policy is a rate in DRF syntax (``"100/min"``; ``s``/``m``/``h``/``d`` by first letter) with an
optional burst (``"100/min;burst=20"``; default: the rate's count), a ``fail`` mode for Redis
trouble — ``open`` (admit), ``closed`` (refuse) or ``local`` (decide with this process's own
counters) — and ``shadow`` (decide and report, never refuse). The same syntax serves the
middleware's ``RATE_LIMITS["ip"]``, routes' ``"rate"`` and DRF's ``DEFAULT_THROTTLE_RATES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from resilience.core.gcra import Limit
from resilience.core.validation import check_number, reject_unknown_keys
from resilience.exceptions import ConfigurationError
from resilience.ratelimit.keys import storage_key

FAIL_MODES = ("open", "closed", "local")
# [0-9], not \d: Python's \d also matches other scripts' digits ("१०" would read as 10)
_RATE = re.compile(r"^\s*([0-9]{1,9})\s*/\s*([0-9]{0,6})\s*([smhd])[a-z]*\s*(?:;\s*burst\s*=\s*([0-9]{1,9})\s*)?$", re.IGNORECASE)
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
LOGIN_SCOPES = ("login", "login_username", "login_pair", "login_global", "login_cooloff")  # never fail open
CHECK_PREFIX = "check:"  # a policy named so is looked at in each decision (cost 0), consumed only by penalise()


@dataclass(frozen=True)
class RatePolicy:
    """One configured limit. ``space`` says where it was configured (``"mw"``: the middleware and
    routes, ``"drf"``: DRF throttles): each place counts in its own keys, so the middleware's
    ``"ip"`` and DRF's ``"ip"`` never share a counter. A ``rate`` of 0 refuses every request."""

    name: str
    rate: int
    period: float
    burst: int
    fail: str = "open"
    shadow: bool = False
    space: str = ""
    wire: tuple[int, int] = field(init=False, repr=False, compare=False)  # (T, τ) in µs, as ``Limit.wire``
    key_name: str = field(init=False, repr=False, compare=False)  # the name hashed into storage keys

    def __post_init__(self) -> None:
        if self.rate == 0:  # "0/min": nothing is admitted; no state is ever read or written
            wire = (0, 0)
        else:
            wire = Limit("check", self.rate, self.period, self.burst, 0, self.name).wire  # validates once, named
            if self.looks_only:  # looked at, never consumed: refuses once `burst` is used up
                wire = (wire[0], wire[1] - wire[0])
        object.__setattr__(self, "wire", wire)
        object.__setattr__(self, "key_name", f"{self.space}:{self.name}" if self.space else self.name)

    @property
    def refuses_all(self) -> bool:
        return self.rate == 0

    @property
    def looks_only(self) -> bool:
        """A ``check:`` policy: decisions only look at it; failures (``Limiter.penalise``) consume it."""
        return self.name.startswith(CHECK_PREFIX)

    def limit(self, identity: str, prefix: str, cost: int = 1) -> Limit:
        """The limit of ``identity`` under this policy, for one decision (built per request, unchecked)."""
        key = storage_key(prefix, self.key_name, identity)
        return Limit.trusted(key, self.rate, self.period, self.burst, cost, self.name, self.wire)

    def failures_key(self, identity: str, prefix: str) -> str:
        """The key counting ``identity``'s failures against this policy (progressive cool-off)."""
        return storage_key(prefix, f"{self.key_name}:failures", identity)

    @property
    def header(self) -> str:
        """IETF ``RateLimit-Policy`` item: ``"ip";q=100;w=60``."""
        return f'"{self.name}";q={self.burst};w={int(self.period)}'


def parse_rate(text: Any, where: str) -> tuple[int, float, int]:
    """``"100/min"`` → (100, 60.0, 100); ``"10/5s;burst=20"`` → (10, 5.0, 20). Errors name ``where``."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigurationError(f'{where} must be a rate like "100/min" or "10/s;burst=20", got {text!r}')
    count, multiple, unit, burst = match.groups()
    rate, period = int(count), int(multiple or 1) * _PERIODS[unit.lower()]
    if period < 1:
        raise ConfigurationError(f"{where} must have a period of at least one second, got {text!r}")
    if rate == 0:  # as in DRF and django-ratelimit: refuse everything (a burst would be meaningless)
        if burst and int(burst) != 0:
            raise ConfigurationError(f"{where}: a rate of 0 refuses every request and takes no burst, got {text!r}")
        return 0, float(period), 0
    if burst is not None and int(burst) < 1:
        raise ConfigurationError(f"{where} must have a burst of at least 1, got {text!r}")
    return rate, float(period), int(burst) if burst else rate


def policy(name: str, spec: Any, where: str, default_fail: str = "open", *, space: str = "") -> RatePolicy:
    """A policy from a rate string or ``{"rate": ..., "fail": ..., "shadow": ...}``; ``space``: see ``RatePolicy``."""
    values = spec if isinstance(spec, dict) else {"rate": spec}
    unknown = sorted(set(values) - {"rate", "fail", "shadow"})
    if unknown:
        raise ConfigurationError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; known: fail, rate, shadow")
    rate, period, burst = parse_rate(values.get("rate"), f"{where} rate")
    fail = values.get("fail", default_fail)
    if fail not in FAIL_MODES:
        raise ConfigurationError(f'{where} fail must be one of "open", "closed", "local", got {fail!r}')
    shadow = values.get("shadow", False)
    if not isinstance(shadow, bool):  # "false" would read as true
        raise ConfigurationError(f"{where} shadow must be True or False, got {shadow!r}")
    return RatePolicy(name, rate, period, burst, fail, shadow, space)


def check_login_fail(rule: RatePolicy, where: str) -> None:
    """Login limits never fail open (a Redis outage must not lift them): ``ConfigurationError`` naming ``where``."""
    if rule.fail == "open":
        raise ConfigurationError(f'{where}: login limits never fail open; use "local" (default) or "closed"')


@dataclass(frozen=True)
class RateLimitSettings:
    """``RESILIENCE["RATE_LIMITS"]`` parsed: the default fail mode, how IPv6 clients are grouped, and
    the middleware's per-client policy (None: no IP limit)."""

    fail: str = "open"
    ipv6_prefix: int = 64
    ip: RatePolicy | None = None


def parse_rate_limits(value: Any, path: str) -> RateLimitSettings:
    """The parser of ``RESILIENCE["RATE_LIMITS"]`` (``conf.PARSERS``); errors name ``path``."""
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} must be a dict, got {type(value).__name__}")
    reject_unknown_keys(value, ("ip", "fail", "ipv6_prefix"), path)
    fail = value.get("fail", "open")
    if fail not in FAIL_MODES:
        raise ConfigurationError(f'{path}["fail"] must be one of "open", "closed", "local", got {fail!r}')
    prefix = value.get("ipv6_prefix", 64)
    check_number(f'{path}["ipv6_prefix"]', prefix, 32, 128, integer=True)
    ip = policy("ip", value["ip"], f'{path}["ip"]', fail, space="mw") if value.get("ip") is not None else None
    return RateLimitSettings(fail, prefix, ip)
