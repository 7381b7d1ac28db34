"""Where fallbacks keep last good values: Redis (sealed JSON, TTL, a cap per fallback) or this process.

Both stores keep what JSON can represent and hand back what JSON returns (tuples come back as
lists, dict keys as strings, and a stale value is always a fresh copy), so a fallback behaves the
same in development (memory) as in production (Redis). ``set`` raises ``TypeError``/``ValueError``
for a value JSON cannot hold; the chain reports that once and keeps nothing.

Each fallback (``group``) holds at most ``max_keys`` live keys; at the cap a new key is refused
(``set`` returns False) while keys already held are still refreshed, so a flood of distinct
arguments cannot push out the values real callers rely on, nor grow the store.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from importlib import resources
from typing import Any

import redis

from resilience.storage.redis.breaker import REDIS_ERRORS
from resilience.storage.signing import seal, unseal

SCHEMA = "v2"  # v1 (pickles at <prefix>:stale:<digest>) is never read: those keys only expire


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _entry(payload: Any) -> tuple[float, Any] | None:
    """``(stored_at, value)`` from what was sealed, or None for any other shape."""
    if not isinstance(payload, dict) or set(payload) != {"at", "value"}:
        return None
    stored_at = payload["at"]
    if isinstance(stored_at, bool) or not isinstance(stored_at, (int, float)) or not math.isfinite(stored_at):
        return None
    return float(stored_at), payload["value"]


class MemoryStaleStore:
    """This process's stale values, kept as JSON text so they come back as the Redis store's would."""

    def __init__(self) -> None:
        self._groups: dict[str, OrderedDict[str, tuple[float, str, float]]] = {}  # oldest write first
        self._lock = threading.Lock()

    def get(self, group: str, key: str) -> tuple[float, Any] | None:
        with self._lock:
            entries = self._groups.get(group)
            entry = entries.get(_digest(key)) if entries is not None else None
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], json.loads(entry[1])

    def set(self, group: str, key: str, stored_at: float, value: Any, ttl: float, max_keys: int) -> bool:
        text = json.dumps(value, separators=(",", ":"))  # TypeError/ValueError: JSON cannot hold it
        digest, now = _digest(key), time.time()
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


class RedisStaleStore:
    """Values sealed (``resilience.storage.signing``) at ``<prefix>:stale:v2:{<group tag>}:<key digest>``,
    with ``…:index`` counting each group's live keys. The seal's purpose names the key, so a value
    verifies only where this library wrote it: a planted, forged, tampered or moved value is a miss."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._prefix = client, prefix
        self._script = client.register_script((resources.files(__package__) / "lua" / "stale_set.lua").read_text())

    def _keys(self, group: str, digest: str) -> tuple[str, str]:
        base = f"{self._prefix}:stale:{SCHEMA}:{{{_digest(group)[:20]}}}"
        return f"{base}:{digest}", f"{base}:index"

    @staticmethod
    def _purpose(digest: str) -> str:
        return f"stale:{SCHEMA}:{digest}"

    def get(self, group: str, key: str) -> tuple[float, Any] | None:
        digest = _digest(key)
        try:
            raw = self._client.get(self._keys(group, digest)[0])
        except REDIS_ERRORS:
            return None
        return _entry(unseal(raw, self._purpose(digest)))

    def set(self, group: str, key: str, stored_at: float, value: Any, ttl: float, max_keys: int) -> bool:
        digest = _digest(key)
        sealed = seal({"at": stored_at, "value": value}, self._purpose(digest))  # TypeError/ValueError: not JSON
        try:
            kept = self._script(keys=list(self._keys(group, digest)), args=[sealed, digest, max(int(ttl * 1000), 1), max_keys])
        except REDIS_ERRORS:
            return True  # not refused: Redis trouble only costs this stale value
        return bool(kept)
