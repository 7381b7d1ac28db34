"""``RESILIENCE["ALERTS"]``: rules, notifiers, the queue; parsed once (the ``PARSERS`` entry in conf.py).

Nothing here imports Django's mail, botocore or an HTTP client, so a typo is a system-check error
(``resilience.E001``, naming the key) wherever the settings load. A webhook's ``secret`` is checked
for shape only: ``env:NAME`` is read from the environment when a notice is sent, by ``secret()``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from resilience.core.validation import check_number, over_defaults
from resilience.exceptions import ConfigurationError
from resilience.observability.alerts.rules import DEFAULT_RULES, Rule, parse_rules

ALERTS_DEFAULTS: dict[str, Any] = {
    "rules": None,  # list of rules (alerts.rules); None: DEFAULT_RULES when there are notifiers
    "notifiers": [],  # email, webhook, sns entries (below)
    "queue_size": 100,  # notices waiting to be sent, per process; past it they are dropped and counted
    "celery": False,  # True: notices are sent by the Celery task resilience.tasks.send_alert
}
NOTIFIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "email": {"type": "email", "to": None, "from": None, "subject_prefix": "[resilience] "},
    "webhook": {"type": "webhook", "url": None, "secret": None, "timeout": 5.0},
    "sns": {"type": "sns", "topic_arn": None, "region": None, "endpoint_url": None},
}
ENV_PREFIX = "env:"
MIN_SECRET = 16
EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+")
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:([a-z]{2}(?:-[a-z]+)+-\d):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


@dataclass(frozen=True)
class EmailConfig:
    to: tuple[str, ...]
    sender: str | None
    subject_prefix: str


@dataclass(frozen=True)
class WebhookConfig:
    """A webhook; ``repr`` shows neither the URL (it may hold a token) nor the secret."""

    url: str
    secret: str  # the key, or "env:NAME"
    timeout: float

    def __repr__(self) -> str:
        return f"WebhookConfig(timeout={self.timeout})"


@dataclass(frozen=True)
class SNSConfig:
    topic_arn: str
    region: str
    endpoint_url: str | None


NotifierConfig = EmailConfig | WebhookConfig | SNSConfig


@dataclass(frozen=True)
class AlertsSettings:
    rules: tuple[Rule, ...] = ()
    notifiers: tuple[NotifierConfig, ...] = ()
    queue_size: int = 100
    celery: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.rules and self.notifiers)


def _url(value: Any, path: str) -> str | None:
    """An http(s) URL without credentials in it (they would travel into logs and errors) or spaces."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ConfigurationError(f"{path} must be an http(s):// URL")  # the value may hold a token: not shown
    if "@" in value.split("/", 3)[2] or any(c.isspace() for c in value) or not value.isprintable():
        raise ConfigurationError(f"{path} must be an http(s):// URL without user:password@ or spaces (sign with the secret)")
    return value


def parse_notifier(value: Any, path: str) -> NotifierConfig:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in NOTIFIER_DEFAULTS:
        raise ConfigurationError(f'{path}["type"] must be one of "email", "webhook", "sns", got {kind!r}')
    o = over_defaults(value, NOTIFIER_DEFAULTS[kind], path)
    if kind == "email":
        to = o["to"]
        if not isinstance(to, (list, tuple)) or not to or not all(isinstance(a, str) and EMAIL.fullmatch(a) for a in to):
            raise ConfigurationError(f'{path}["to"] must be a non-empty list of email addresses, got {to!r}')
        if o["from"] is not None and not (isinstance(o["from"], str) and o["from"]):
            raise ConfigurationError(f'{path}["from"] must be None (DEFAULT_FROM_EMAIL) or an address, got {o["from"]!r}')
        prefix = o["subject_prefix"]
        if not isinstance(prefix, str) or len(prefix) > 50 or not prefix.isprintable():
            raise ConfigurationError(f'{path}["subject_prefix"] must be at most 50 printable characters')
        return EmailConfig(tuple(to), o["from"], prefix)
    if kind == "webhook":
        url = _url(o["url"], f'{path}["url"]')
        if url is None:
            raise ConfigurationError(f'{path}["url"] is required: an http(s):// URL')
        secret = o["secret"]
        if not isinstance(secret, str) or not (
            (secret.startswith(ENV_PREFIX) and len(secret) > len(ENV_PREFIX)) or len(secret) >= MIN_SECRET
        ):
            raise ConfigurationError(f'{path}["secret"] must be "env:NAME" or a key of at least {MIN_SECRET} characters')
        check_number(f'{path}["timeout"]', o["timeout"], 0, 30, low_open=True)
        return WebhookConfig(url, secret, float(o["timeout"]))
    arn = o["topic_arn"]
    found = TOPIC_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if found is None:
        raise ConfigurationError(f'{path}["topic_arn"] must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)')
    region = o["region"] if o["region"] is not None else found.group(1)
    if not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigurationError(f'{path}["region"] must be None (the topic\'s) or a region name, got {region!r}')
    return SNSConfig(arn, region, _url(o["endpoint_url"], f'{path}["endpoint_url"]'))


def parse_alerts(value: Any, path: str) -> AlertsSettings:
    """``RESILIENCE["ALERTS"]`` over ``ALERTS_DEFAULTS``; unknown keys and bad values name the key."""
    o = over_defaults(value, ALERTS_DEFAULTS, path)
    if not isinstance(o["notifiers"], (list, tuple)):
        raise ConfigurationError(f'{path}["notifiers"] must be a list, got {type(o["notifiers"]).__name__}')
    notifiers = tuple(parse_notifier(n, f'{path}["notifiers"][{i}]') for i, n in enumerate(o["notifiers"]))
    raw_rules = o["rules"] if o["rules"] is not None else (DEFAULT_RULES if notifiers else [])
    rules = parse_rules(raw_rules, f'{path}["rules"]')
    check_number(f'{path}["queue_size"]', o["queue_size"], 1, 100_000, integer=True)
    if not isinstance(o["celery"], bool):
        raise ConfigurationError(f'{path}["celery"] must be True or False, got {o["celery"]!r}')
    return AlertsSettings(rules, notifiers, o["queue_size"], o["celery"])


def secret(config: WebhookConfig) -> bytes:
    """The webhook's HMAC key: the setting, or the environment variable it names (read at send time).
    Raises ConfigurationError naming the variable, never showing a value."""
    if not config.secret.startswith(ENV_PREFIX):
        return config.secret.encode()
    variable = config.secret[len(ENV_PREFIX) :]
    key = os.environ.get(variable, "")
    if len(key) < MIN_SECRET:
        raise ConfigurationError(
            f"the webhook secret's environment variable {variable!r} is not set or shorter than {MIN_SECRET} characters"
        )
    return key.encode()
