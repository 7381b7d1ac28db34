"""This process's stale values: the memory implementation of ``core.ports.StaleStore``.

Values are kept as JSON text, so they come back as the Redis store's would (tuples as lists, dict
keys as strings, always a fresh copy): a fallback behaves the same in development as in
production. Each fallback (``group``) holds at most ``max_keys`` live keys; at the cap a new key is
refused while keys already held are still refreshed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

from resilience.storage.keys import digest


def key_digest(key: str) -> str:
    """The hex SHA-256 of a stale key: what both stores index values by."""
    return digest(key)


class MemoryStaleStore:
    """Stale values in a dict per fallback, oldest write first, under one lock; always healthy."""

    healthy = True

    def __init__(self) -> None:
        self._groups: dict[str, OrderedDict[str, tuple[float, str, float]]] = {}  # oldest write first
        self._lock = threading.Lock()

    def get(self, group: str, key: str) -> tuple[float, Any] | None:
        """``(stored_at, value)``, or None when missing or expired."""
        with self._lock:
            entries = self._groups.get(group)
            entry = entries.get(key_digest(key)) if entries is not None else None
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], json.loads(entry[1])

    def set(self, group: str, key: str, stored_at: float, value: Any, ttl: float, max_keys: int) -> bool:
        """Keep ``value`` for ``ttl`` seconds; False when ``group`` holds ``max_keys`` other live keys."""
        text = json.dumps(value, separators=(",", ":"))  # TypeError/ValueError: JSON cannot hold it
        digest, now = key_digest(key), time.time()
        with self._lock:
            entries = self._groups.setdefault(group, OrderedDict())
            if digest not in entries:
                while entries and next(iter(entries.values()))[2] < now:  # expired, oldest first
                    entries.popitem(last=False)
                if len(entries) >= max_keys:
                    return False
            entries[digest] = (stored_at, text, now + ttl)
            entries.move_to_end(digest)
        return True
