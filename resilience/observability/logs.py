"""Log lines as JSON, with the request and tenant they belong to: a formatter and a filter for
``LOGGING``, so CloudWatch Logs Insights (or any JSON log store) can query every event by field.

    LOGGING = {
        "version": 1,
        "filters": {"request": {"()": "resilience.observability.logs.RequestContextFilter"}},
        "formatters": {"json": {"()": "resilience.observability.logs.JSONFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request"], "formatter": "json"}},
        "loggers": {"resilience": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }

Why by hand and not python-json-logger: what is needed is one ``json.dumps`` of the record's base
fields and the event's own (``record.resilience``, set by ``events.emit``), flat, so a query reads
``filter kind = "transition"``; the formatter works with any handler, and the filter with any
formatter (python-json-logger's included: it puts ``request_id`` and ``tenant`` in its output too).

What goes in: the event's fields (never a secret or raw client input: the event path's own rule),
the request id and the tenant id when the line is logged while a request is being served. The
request id is the ``REQUEST_ID_HEADER`` of a request from ``TRUSTED_PROXIES`` (a load balancer's
id, so lines can be joined with its logs), if it is a plain token of at most 128 characters;
otherwise an id of our own. The tenant is the one already resolved for the request (this filter
never calls the resolver: a log line must not run authentication code), as a plain token of at most
64 characters, or else its digest.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from resilience.conf import resilience_settings
from resilience.core.client_ip import is_trusted, parse_ip
from resilience.storage.keys import digest

_REQUEST_ID = "_resilience_request_id"
_TENANTS = ("_resilience_log_tenant", "_resilience_tenant")  # tenancy.LOG_TENANT (a DRF Request's), then tenant_of's cache
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:/=+-]{1,128}")
_PLAIN_TENANT = re.compile(r"[A-Za-z0-9._:@-]{1,64}")
BASE = ("time", "level", "logger", "message")


def request_id(request: Any) -> str:
    """The request's id: a trusted proxy's ``REQUEST_ID_HEADER`` if plain, else our own; once per request."""
    known: str | None = getattr(request, "__dict__", {}).get(_REQUEST_ID)
    if known is not None:
        return known
    chosen = None
    header = resilience_settings.REQUEST_ID_HEADER
    meta = getattr(request, "META", {})
    if header is not None:
        given = meta.get("HTTP_" + header.upper().replace("-", "_"))
        peer = parse_ip(meta.get("REMOTE_ADDR") or "")
        trusted = resilience_settings.TRUSTED_PROXIES
        if isinstance(given, str) and _PLAIN_ID.fullmatch(given) and peer is not None and is_trusted(peer, trusted):
            chosen = given
    chosen = chosen or uuid.uuid4().hex
    try:
        request.__dict__[_REQUEST_ID] = chosen
    except (AttributeError, TypeError):  # an object without a __dict__: a new id each time asked
        pass
    return chosen


def tenant_label(request: Any) -> str | None:
    """The tenant already resolved for ``request`` (None if not yet or none), bounded and plain."""
    known = getattr(request, "__dict__", {})
    tenant = next((known[key] for key in _TENANTS if known.get(key)), None)
    if not isinstance(tenant, str) or not tenant:
        return None
    return tenant if _PLAIN_TENANT.fullmatch(tenant) else f"sha256:{digest(tenant, 16)}"


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tenant`` to every record logged while a request is served (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from resilience.tenancy import current_request  # tenancy imports the event path, which logs

        request = current_request.get()
        record.request_id = request_id(request) if request is not None else None
        record.tenant = tenant_label(request) if request is not None else None
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, the event's fields, the
    request and tenant ids (``RequestContextFilter``), and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "resilience", None)
        if isinstance(event, dict):
            line.update((key, value) for key, value in event.items() if key not in BASE)
        for key in ("request_id", "tenant"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False, separators=(",", ":"))
