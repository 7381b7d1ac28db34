"""The ``RESILIENCE`` settings dict, read through one lazy object (DRF's ``api_settings`` pattern).

Nothing binds a setting at import time; ``setting_changed`` reloads the object and everything
built from it (breakers, stores, metrics sinks).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from resilience.core.breaker_config import BreakerConfig, validate_name
from resilience.core.validation import check_number, import_path, reject_unknown_keys
from resilience.exceptions import ConfigurationError

# Every setting, its default and what it means; README.md's settings table says the same.
DEFAULTS: dict[str, Any] = {
    "REDIS": None,  # django-redis cache alias or redis:// URL; None: in-process state (one worker)
    "REDIS_TIMEOUT": 0.1,  # seconds any Redis command of the library may take before local fallback
    "KEY_PREFIX": "resilience",  # prefix of every Redis key and channel
    "SYNC_INTERVAL": 0.5,  # seconds between full re-reads of shared breaker state (pub/sub is instant)
    "STATE_TTL": 30 * 86_400,  # seconds a breaker's shared state lives after its last change
    "HISTORY": True,  # record transitions and manual actions in the CircuitEvent model
    "BREAKERS": {"default": {}},  # per-name breaker settings; "default" applies to every breaker
    "METRICS": {"SINKS": []},  # dotted paths of resilience.observability.metrics.MetricsSink subclasses
    "TRUSTED_PROXIES": [],  # addresses or networks of the proxies whose X-Forwarded-For is believed
    "TENANT_RESOLVER": "resilience.integrations.entra.entra_tenant",  # dotted path: request -> tenant id or None
    "RETRY": {},  # policy name -> overrides of resilience.retries.policies.POLICY_DEFAULTS ("default": all policies)
    "ROUTES": [],  # per-route timeout, max_concurrency, retry_after, trust_timeout_header, rate (routing.routes)
    "DATABASE_REPLICAS": {},  # primary alias -> replica aliases, for resilience.integrations.postgres.ReplicaRouter
    "RATE_LIMITS": {},  # "ip": the middleware's per-client limit; "fail"; "ipv6_prefix" (see README)
    "ENTRA": {},  # max_staleness, retry_interval, kid_refresh_interval (seconds): integrations.entra.settings
    "AWS": {},  # throttling_base (seconds), CREDENTIALS (the shared role credentials): integrations.aws.settings
    "ALERTS": {},  # rules, notifiers (email, webhook, sns), queue_size, celery: observability.alerts.settings
    "TIMEOUT_HEADERS": "trusted_proxies",  # who may shorten a deadline: "trusted_proxies" | "any" | "none"
    "TIMEOUT_HEADER_FLOOR": 0.1,  # seconds: no caller's header makes a deadline shorter than this
    "FALLBACK_MAX_STALE_KEYS": 1000,  # distinct argument tuples each @fallback(stale_for=...) keeps stale values for
    "HTTP_MAX_HOST_BREAKERS": 100,  # host breakers per ResilientSession breaker_prefix and process; later hosts share one
    "SIGNING_KEY": None,  # HMAC key sealing shared values read back from Redis; None: derived from SECRET_KEY
    "REQUEST_ID_HEADER": "X-Request-ID",  # a request id believed from TRUSTED_PROXIES only (log lines); None: always our own
}
ROOT = "RESILIENCE"
TIMEOUT_HEADER_MODES = ("trusted_proxies", "any", "none")
_listeners: list[Callable[[], None]] = []
Validator = Callable[[Any, str], None]


def _seconds(high: float) -> Validator:
    """A number of seconds above 0 and at most ``high``."""
    return lambda value, path: check_number(path, value, 0, high, low_open=True)


def _whole(high: int) -> Validator:
    """A whole number from 1 to ``high``."""
    return lambda value, path: check_number(path, value, 1, high, integer=True)


def _redis(value: Any, path: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        shown = repr(value) if isinstance(value, str) else type(value).__name__  # a dict or bytes may hold a password
        raise ConfigurationError(f"{path} must be a cache alias or a redis:// URL, got {shown}")
    from resilience.storage.redis.urls import check_url, is_cluster_url, is_url, redacted  # storage imports this module

    if isinstance(value, str) and is_url(value):
        try:
            check_url(value)
        except ValueError:  # not chained: urllib's messages quote parts of the URL, a password's included
            form = "a Redis URL"
            if is_cluster_url(value):
                form = "redis+cluster://host:port[,host:port...][/0] (rediss+cluster:// with TLS)"
            shown = redacted(value)
            rules = "a lower-case scheme, a password percent-encoded"
            raise ConfigurationError(f"{path} must be {form} ({rules}), got {shown!r}") from None


def _key_prefix(value: Any, path: str) -> None:
    if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 64 or "{" in value:
        raise ConfigurationError(f"{path} must be 1-64 printable characters without braces, got {value!r}")


def _flag(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{path} must be True or False, got {value!r}")


def _replicas(value: Any, path: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(primary, str) and isinstance(aliases, (list, tuple)) and all(isinstance(a, str) for a in aliases)
        for primary, aliases in value.items()
    ):
        raise ConfigurationError(f"{path} must map primary aliases to lists of replica aliases, got {value!r}")


def _timeout_headers(value: Any, path: str) -> None:
    if value not in TIMEOUT_HEADER_MODES:
        raise ConfigurationError(f"{path} must be one of {', '.join(map(repr, TIMEOUT_HEADER_MODES))}, got {value!r}")


def _header_name(value: Any, path: str) -> None:
    if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value)):
        raise ConfigurationError(f"{path} must be None or an HTTP header name (letters, digits, '-'), got {value!r}")


def _signing_key(value: Any, path: str) -> None:
    if value is not None and (not isinstance(value, str) or len(value) < 32):
        raise ConfigurationError(f"{path} must be None or a string of at least 32 characters")


# The plain keys, each checked by its validator ``(value, path)``, all together at first access.
# BREAKERS is checked as it is parsed into BreakerConfig objects; every other key is in PARSERS.
VALIDATORS: dict[str, Validator] = {
    "REDIS": _redis,
    "REDIS_TIMEOUT": _seconds(30),
    "KEY_PREFIX": _key_prefix,
    "SYNC_INTERVAL": _seconds(60),
    "STATE_TTL": _seconds(365 * 86_400),
    "HISTORY": _flag,
    "DATABASE_REPLICAS": _replicas,
    "TIMEOUT_HEADERS": _timeout_headers,
    "TIMEOUT_HEADER_FLOOR": _seconds(60),
    "FALLBACK_MAX_STALE_KEYS": _whole(1_000_000),
    "HTTP_MAX_HOST_BREAKERS": _whole(100_000),
    "SIGNING_KEY": _signing_key,
    "REQUEST_ID_HEADER": _header_name,
}


def exception_classes(value: Any, path: str) -> tuple[type[BaseException], ...]:
    """A breaker's ``ignore``: exception classes, or dotted paths to them."""
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"{path} must be a list of exception classes or dotted paths, got {value!r}")
    classes = []
    for item in value:
        cls = import_path(item, path) if isinstance(item, str) else item
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ConfigurationError(f"{path} must name exception classes, got {item!r}")
        classes.append(cls)
    return tuple(classes)


# Keys whose value is turned into objects (policies, tables, callables) by a parser in the module that
# owns the concept, named by dotted path so this module imports none of them. Each parser takes
# ``(value, path)`` and returns the parsed value or raises ConfigurationError naming ``path``. The
# result is cached here until the settings change: nothing else caches settings.
PARSERS: dict[str, str] = {
    "RATE_LIMITS": "resilience.ratelimit.policies.parse_rate_limits",
    "TRUSTED_PROXIES": "resilience.core.client_ip.parse_networks",
    "TENANT_RESOLVER": "resilience.tenancy.parse_resolver",
    "RETRY": "resilience.retries.policies.parse_retry",
    "ROUTES": "resilience.routing.routes.parse_routes",
    "ENTRA": "resilience.integrations.entra.settings.parse_entra",
    "AWS": "resilience.integrations.aws.settings.parse_aws",
    "METRICS": "resilience.observability.metrics.parse_metrics",
    "ALERTS": "resilience.observability.alerts.settings.parse_alerts",
}
# The check id that reports a key's problem (default resilience.E001).
CHECK_IDS: dict[str, str] = {
    "RATE_LIMITS": "resilience.E012",
    "TRUSTED_PROXIES": "resilience.E012",
    "TENANT_RESOLVER": "resilience.E014",
    "ROUTES": "resilience.E011",
}


class ResilienceSettings:
    """Validated view of ``settings.RESILIENCE``; attribute access by key (``resilience_settings.REDIS``).

    Plain keys are validated together at first access. Keys in ``PARSERS`` are parsed on first
    access, one by one, so a typo in one feature's settings breaks that feature, not every breaker;
    ``manage.py check`` (``problems()``) parses them all at start-up."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None
        self._breakers: dict[str, BreakerConfig] = {}
        self._parsed: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        user = getattr(django_settings, ROOT, {})
        if not isinstance(user, dict):
            raise ConfigurationError(f"{ROOT} must be a dict, got {type(user).__name__}")
        reject_unknown_keys(user, DEFAULTS, ROOT)
        values = {**DEFAULTS, **user}
        for key, validate in VALIDATORS.items():
            validate(values[key], f'{ROOT}["{key}"]')
        self._breakers = self._load_breakers(values["BREAKERS"])
        return values

    def _load_breakers(self, raw: Any) -> dict[str, BreakerConfig]:
        path = f'{ROOT}["BREAKERS"]'
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{path} must be a dict of breaker name -> settings, got {type(raw).__name__}")
        configs: dict[str, BreakerConfig] = {}
        for name in ["default", *sorted(n for n in raw if n != "default")]:
            if not isinstance(name, str):
                raise ConfigurationError(f"{path} keys must be breaker names (str), got {name!r}")
            try:
                validate_name(name)
            except ConfigurationError as exc:  # it would fail at first use, and break `breakers list` and the admin
                raise ConfigurationError(f"{path}: {exc}") from None
            entry = raw.get(name, {})
            entry_path = f'{path}["{name}"]'
            if isinstance(entry, dict) and "ignore" in entry:
                entry = {**entry, "ignore": exception_classes(entry["ignore"], f'{entry_path}["ignore"]')}
            configs[name] = BreakerConfig.from_mapping(entry, entry_path, base=configs.get("default"))
        return configs

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = self._load()
        return self._values

    def __getattr__(self, key: str) -> Any:
        if key not in DEFAULTS:
            raise AttributeError(f"invalid resilience setting {key!r}")
        value = self.parsed(key) if key in PARSERS else self.values[key]
        # Kept as an instance attribute until the next reload (as DRF's api_settings does), so the
        # hot paths read a setting without a call into this method.
        setattr(self, key, value)
        return value

    def parsed(self, key: str) -> Any:
        """The value of ``key`` after its parser (``PARSERS``), cached until the settings change."""
        try:
            return self._parsed[key]
        except KeyError:
            pass
        raw = self.values[key]
        value = import_string(PARSERS[key])(raw, f'{ROOT}["{key}"]')
        self._parsed[key] = value
        return value

    def _each_problem(self) -> list[tuple[str, str]]:
        """When the plain keys do not load together: every bad key, one message each (a deploy then
        fixes them all at once, not one per attempt), the parsed keys' included."""
        user = getattr(django_settings, ROOT, {})
        if not isinstance(user, dict):
            return []
        found: dict[str, str] = {}  # message -> check id (a parser reading another bad key repeats its message)

        def attempt(check_id: str, run: Any, *args: Any) -> None:
            try:
                run(*args)
            except ConfigurationError as exc:
                found.setdefault(str(exc), check_id)

        attempt("resilience.E001", reject_unknown_keys, user, DEFAULTS, ROOT)
        values = {**DEFAULTS, **{key: value for key, value in user.items() if key in DEFAULTS}}
        for key, validate in VALIDATORS.items():
            attempt("resilience.E001", validate, values[key], f'{ROOT}["{key}"]')
        attempt("resilience.E001", self._load_breakers, values["BREAKERS"])
        for key, parser in PARSERS.items():
            attempt(CHECK_IDS.get(key, "resilience.E001"), import_string(parser), values[key], f'{ROOT}["{key}"]')
        return [(check_id, message) for message, check_id in found.items()]

    def problems(self) -> list[tuple[str, str]]:
        """``(check id, message)`` for every key that does not validate: what ``manage.py check`` reports."""
        try:
            self.values  # noqa: B018 - the plain keys, validated together
        except ConfigurationError as exc:
            return self._each_problem() or [("resilience.E001", str(exc))]
        found = []
        for key in PARSERS:
            try:
                self.parsed(key)
            except ConfigurationError as exc:
                found.append((CHECK_IDS.get(key, "resilience.E001"), str(exc)))
        return found

    def breaker_config(self, name: str) -> BreakerConfig:
        """The configured settings of breaker ``name``, or the ``default`` entry."""
        self.values  # noqa: B018 - loads and validates
        return self._breakers.get(name) or self._breakers["default"]

    def configured_breakers(self) -> list[str]:
        self.values  # noqa: B018
        return [name for name in self._breakers if name != "default"]

    def reload(self) -> None:
        for key in DEFAULTS:
            self.__dict__.pop(key, None)
        self._values = None
        self._breakers = {}
        self._parsed = {}
        for listener in list(_listeners):
            listener()


resilience_settings = ResilienceSettings()


def on_reload(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever the RESILIENCE setting changes (tests, override_settings)."""
    _listeners.append(listener)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in (ROOT, "CACHES", "DEBUG", "ROOT_URLCONF"):
        resilience_settings.reload()


setting_changed.connect(_setting_changed, dispatch_uid="resilience.conf")
