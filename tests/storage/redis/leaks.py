"""What the library says and shows an operator, and the check that no Redis secret is in it; for the
TLS suites of one server (test_tls_auth.py, test_tls_secrets.py) and of a cluster (test_cluster_tls.py)."""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any, Protocol

from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from resilience.breakers.registry import breakers


class HoldsSecrets(Protocol):
    """A test-owned Redis (``TlsRedisServer``, ``TlsLocalRedisCluster``): every form its secrets could leak in."""

    @property
    def leak_markers(self) -> tuple[str, ...]: ...


def assert_no_secret(text: str, redis: HoldsSecrets, *more: str) -> None:
    for secret in (*redis.leak_markers, *more):
        assert secret not in text, f"{secret!r} leaked"


def said(records: list[logging.LogRecord], events: list[Any]) -> str:
    """Everything the library said: log lines (with their tracebacks) and events (with their fields)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join([formatter.format(r) for r in records] + [repr(e) for e in events])


def run(*args: str) -> str:
    """A management command's stdout and stderr, or its error's text."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except (CommandError, SystemCheckError) as exc:
        return f"{out.getvalue()}{err.getvalue()}{exc}"
    return out.getvalue() + err.getvalue()


def right_or_wrong_secret(secret: str, settings: Any, wrong_url: str) -> None:
    """The two cases an operator's view must show no secret in: ``"right"``, the store reachable and
    "payments" forced open in it; ``"wrong"``, ``RESILIENCE["REDIS"]`` is ``wrong_url`` (a wrong secret)."""
    if secret == "wrong":
        settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": wrong_url}
    else:
        breakers.get_or_create("payments").force_open()
