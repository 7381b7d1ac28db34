"""Notifiers: where a notice goes. Email (Django's mail), a webhook signed with HMAC-SHA256, SNS.

Each ``send(notice)`` may block up to its own bound (the webhook's ``timeout``, ``EMAIL_TIMEOUT``,
the protected boto3 client's timeouts) and raises on failure; ``dispatch`` calls them off the
request path and turns a failure into the event ``alerts send_failed``.

Webhook signature: the body is the notice as JSON; ``X-Resilience-Timestamp`` is the Unix time of
the send and ``X-Resilience-Signature`` is ``sha256=`` + the hex HMAC-SHA256, keyed with the
secret, of ``<timestamp>.<body>``. A receiver recomputes it (``verify``) and refuses a timestamp
older than a few minutes, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from resilience.observability.alerts import notice as notices
from resilience.observability.alerts.settings import EmailConfig, NotifierConfig, SNSConfig, WebhookConfig, secret

SIGNATURE_HEADER = "X-Resilience-Signature"
TIMESTAMP_HEADER = "X-Resilience-Timestamp"
REPLAY_TOLERANCE = 300  # seconds: how old a signed timestamp ``verify`` accepts


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``key``."""
    return "sha256=" + hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(
    key: bytes, body: bytes, timestamp: str, signature: str, tolerance: float = REPLAY_TOLERANCE, now: float | None = None
) -> bool:
    """What a webhook receiver runs: the signature matches and the timestamp is recent."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= tolerance and hmac.compare_digest(sign(key, timestamp, body), signature)


class Notifier:
    kind = "notifier"

    def send(self, notice: dict[str, Any]) -> None:
        raise NotImplementedError


class EmailNotifier(Notifier):
    """``django.core.mail.send_mail`` to the configured recipients (``EMAIL_BACKEND`` decides how)."""

    kind = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.config = config

    def send(self, notice: dict[str, Any]) -> None:
        from django.core.mail import send_mail

        subject = self.config.subject_prefix + notices.subject(notice)
        send_mail(subject, notices.text(notice), self.config.sender, list(self.config.to), fail_silently=False)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is a failure: the signed body is not sent anywhere else


class WebhookNotifier(Notifier):
    """POST the notice as JSON, signed; any answer but 2xx (or no answer within ``timeout``) fails."""

    kind = "webhook"

    def __init__(self, config: WebhookConfig, clock: Callable[[], float] = time.time) -> None:
        self.config, self.clock = config, clock
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, notice: dict[str, Any]) -> None:
        body = json.dumps(notice, sort_keys=True, separators=(",", ":")).encode()
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "django-resilience-alerts",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret(self.config), timestamp, body),
        }
        request = urllib.request.Request(self.config.url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) checked
        with self._opener.open(request, timeout=self.config.timeout) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered {response.status}")


class SNSNotifier(Notifier):
    """Publish the notice (JSON) to an SNS topic through a protected boto3 client (breaker ``aws:sns:<region>``)."""

    kind = "sns"

    def __init__(self, config: SNSConfig) -> None:
        self.config = config
        self._client: Any = None

    def send(self, notice: dict[str, Any]) -> None:
        if self._client is None:
            from resilience.integrations.aws import session

            self._client = session().client("sns", region_name=self.config.region, endpoint_url=self.config.endpoint_url)
        self._client.publish(
            TopicArn=self.config.topic_arn, Subject=notices.subject(notice), Message=json.dumps(notice, sort_keys=True)
        )


def build(config: NotifierConfig) -> Notifier:
    if isinstance(config, EmailConfig):
        return EmailNotifier(config)
    if isinstance(config, WebhookConfig):
        return WebhookNotifier(config)
    return SNSNotifier(config)
