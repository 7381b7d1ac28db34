"""A notice: the plain data every notifier sends, built from an event without anything a client sent.

Only the fields in ``SAFE_FIELDS`` are copied, and only numbers or short plain words: states,
reasons, rates, counts. An event's other fields (an ``actor``, an ``error``, a ``value`` read from
Redis) never reach a notice, nor does anything of a request: no header, no URL, no body.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
from typing import Any

from resilience.core.event import Event

SAFE_FIELDS = (
    "old_state", "new_state", "state", "reason", "generation", "failure_rate", "slow_rate", "calls", "open_for",
    "retry_after", "count",
)  # fmt: skip
_PLAIN = re.compile(r"[A-Za-z0-9_. :-]{0,100}")
STATUSES = ("opened", "reminder", "resolved")


def _safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value if value == value else None
    return value if isinstance(value, str) and _PLAIN.fullmatch(value) else None


def safe_name(name: str) -> str:
    """A breaker name as a notice shows it: at most 200 characters, control characters escaped."""
    text = name[:200]
    return text if text.isprintable() else json.dumps(text)[1:-1]


def build(rule_id: str, status: str, incident: str, event: Event, count: int, now: float) -> dict[str, Any]:
    """The notice: JSON-ready plain data (the webhook's body, the SNS message, the Celery task's argument)."""
    fields = {key: _safe(event.fields[key]) for key in SAFE_FIELDS if key in event.fields}
    return {
        "status": status,
        "rule": rule_id,
        "incident": incident,
        "event": f"{event.area} {event.kind}",
        "name": safe_name(event.name),
        "fields": {key: value for key, value in fields.items() if value is not None},
        "count": count,
        "time": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname()[:100],
    }


def subject(notice: dict[str, Any]) -> str:
    """``opened: breaker_open payments``: one line of ASCII, at most 100 characters (SNS's limits)."""
    line = f"{notice['status']}: {notice['rule']} {notice['name']}"
    return line.encode("ascii", "replace").decode("ascii")[:100]


def text(notice: dict[str, Any]) -> str:
    """The notice as plain text lines (email body)."""
    lines = [
        f"{notice['rule']} {notice['status']}: {notice['event']} name={notice['name']}",
        *(f"{key}={value}" for key, value in notice["fields"].items()),
        f"incident={notice['incident']} count={notice['count']} time={notice['time']} host={notice['host']}",
    ]
    return "\n".join(lines) + "\n"
