"""The event record every decision produces; dispatched by ``resilience.observability.events``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One decision: ``area`` (breaker, retry, ...), ``kind`` (transition, rejected, ...)."""

    area: str
    kind: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """An event sink that drops everything; the default of bare engines."""
