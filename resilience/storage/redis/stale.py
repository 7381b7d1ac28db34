"""Where fallbacks keep last good values in Redis: sealed JSON, a TTL, a cap per fallback.

Like ``storage.memory.stale`` (same JSON round trip, same cap semantics), shared by every worker.
``set`` raises ``TypeError``/``ValueError`` for a value JSON cannot hold; the chain reports that
once and keeps nothing. Redis trouble costs only stale values (a read misses, a write is lost): one
``storage store_unavailable`` event (name ``stale``) reports the outage, one ``store_recovered`` its end.
"""

from __future__ import annotations

import math
from typing import Any

import redis

from resilience.core.event import EventSink
from resilience.core.validation import is_number
from resilience.observability import events
from resilience.storage.memory.stale import key_digest
from resilience.storage.redis.health import REDIS_ERRORS, StoreHealth
from resilience.storage.redis.scripts import StaleSetArgs, StaleSetKeys, stale_set
from resilience.storage.signing import seal, unseal

SCHEMA = "v2"  # v1 (pickles at <prefix>:stale:<digest>) is never read: those keys only expire


def _entry(payload: Any) -> tuple[float, Any] | None:
    """``(stored_at, value)`` from what was sealed, or None for any other shape."""
    if not isinstance(payload, dict) or set(payload) != {"at", "value"}:
        return None
    stored_at = payload["at"]
    if not is_number(stored_at) or not math.isfinite(stored_at):
        return None
    return float(stored_at), payload["value"]


class RedisStaleStore:
    """Values sealed (``resilience.storage.signing``) at ``<prefix>:stale:v2:{<group tag>}:<key digest>``,
    with ``…:index`` counting each group's live keys. The seal's purpose names the key, so a value
    verifies only where this library wrote it: a planted, forged, tampered or moved value is a miss."""

    def __init__(self, client: redis.Redis, prefix: str, emit: EventSink = events.emit) -> None:
        self._client, self._prefix = client, prefix
        self._script = stale_set(client)
        self._health = StoreHealth("stale", emit)

    @property
    def healthy(self) -> bool:
        """False for a second after Redis failed."""
        return self._health.healthy

    def _keys(self, group: str, digest: str) -> StaleSetKeys:
        base = f"{self._prefix}:stale:{SCHEMA}:{{{key_digest(group)[:20]}}}"
        return StaleSetKeys(value=f"{base}:{digest}", index=f"{base}:index")

    @staticmethod
    def _purpose(digest: str) -> str:
        return f"stale:{SCHEMA}:{digest}"

    def get(self, group: str, key: str) -> tuple[float, Any] | None:
        """``(stored_at, value)``, or None when missing, expired, not verifiable or Redis failed."""
        digest = key_digest(key)
        try:
            raw = self._client.get(self._keys(group, digest).value)
        except REDIS_ERRORS as exc:
            self._health.failed(exc, fallback="none")
            return None
        self._health.succeeded()
        return _entry(unseal(raw, self._purpose(digest)))

    def set(self, group: str, key: str, stored_at: float, value: Any, ttl: float, max_keys: int) -> bool:
        """Keep ``value`` for ``ttl`` seconds; False when refused at the cap (Redis trouble is not a refusal)."""
        digest = key_digest(key)
        sealed = seal({"at": stored_at, "value": value}, self._purpose(digest))  # TypeError/ValueError: not JSON
        args = StaleSetArgs(sealed=sealed, digest=digest, ttl_ms=max(int(ttl * 1000), 1), max_keys=max_keys)
        try:
            kept = self._script(self._keys(group, digest), args)
        except REDIS_ERRORS as exc:
            self._health.failed(exc, fallback="none")
            return True  # not refused: Redis trouble only costs this stale value
        self._health.succeeded()
        return bool(kept)
