"""Where fallbacks keep last good values: Redis (hashed keys, TTL) or this process (bounded)."""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from collections import OrderedDict
from typing import Any

import redis

from .redis import REDIS_ERRORS


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class MemoryStaleStore:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, Any, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: str) -> tuple[float, Any] | None:
        with self._lock:
            entry = self._entries.get(_digest(key))
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], entry[1]

    def set(self, key: str, stored_at: float, value: Any, ttl: float) -> None:
        with self._lock:
            self._entries[_digest(key)] = (stored_at, value, time.time() + ttl)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class RedisStaleStore:
    """Values are pickled: only ever values this application's own functions returned."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}:stale:{_digest(key)}"

    def get(self, key: str) -> tuple[float, Any] | None:
        try:
            raw = self._client.get(self._key(key))
        except REDIS_ERRORS:
            return None
        return pickle.loads(raw) if isinstance(raw, bytes) else None  # noqa: S301 - written by this library only

    def set(self, key: str, stored_at: float, value: Any, ttl: float) -> None:
        try:
            self._client.set(self._key(key), pickle.dumps((stored_at, value)), px=max(int(ttl * 1000), 1))
        except REDIS_ERRORS:
            pass
