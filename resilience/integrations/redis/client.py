"""Redis for Django through django-redis, bounded by the deadline, guarded by a breaker, retried safely.

    CACHES = {"default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"CLIENT_CLASS": "resilience.integrations.redis.ResilientClient"},
    }}

Every command: refused with ``DeadlineExceeded`` once the deadline has passed, and its socket
timeout shortened to the time that is left; run through the breaker ``redis:<host>:<port>/<db>``;
retried with the ``redis`` policy only when the command is idempotent (GET yes, INCR never).
redis-py's own retry layer is switched off, so there is exactly one.
"""

from __future__ import annotations

from typing import Any

import redis

try:
    from django_redis.client import DefaultClient
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without django-redis
    from resilience.integrations.extras import missing

    raise missing("django_redis", "resilience.integrations.redis.client") from exc
from redis.backoff import NoBackoff
from redis.retry import Retry

from resilience.breakers.decorator import circuit_breaker
from resilience.core.deadline import remaining
from resilience.exceptions import DeadlineExceeded
from resilience.retries.policies import retry

READS = {
    "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "GETRANGE", "HGET", "HMGET", "HGETALL", "HEXISTS",
    "HKEYS", "HVALS", "HLEN", "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "ZRANGE", "ZRANGEBYSCORE",
    "ZREVRANGE", "ZSCORE", "ZCARD", "ZRANK", "ZCOUNT", "LRANGE", "LLEN", "LINDEX", "KEYS", "SCAN", "HSCAN",
    "SSCAN", "ZSCAN", "PING", "INFO", "DBSIZE", "TIME", "PFCOUNT", "GETBIT", "BITCOUNT", "XRANGE", "XLEN",
}  # fmt: skip
IDEMPOTENT_WRITES = {"SETEX", "PSETEX", "MSET", "DEL", "UNLINK", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT",
                     "PERSIST", "HSET", "HMSET", "HDEL", "SADD", "SREM", "ZREM", "SETBIT"}  # fmt: skip
SET_OPTIONS_NOT_IDEMPOTENT = {b"NX", b"XX", b"GET", "NX", "XX", "GET", "nx", "xx", "get"}


def is_idempotent(args: tuple[Any, ...]) -> bool:
    """True when running the command twice has the same effect as once (safe to retry)."""
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    name = name.upper()
    if name in READS or name in IDEMPOTENT_WRITES:
        return True
    return name == "SET" and not any(isinstance(a, (str, bytes)) and a in SET_OPTIONS_NOT_IDEMPOTENT for a in args[3:])


class ResilientRedis(redis.Redis):
    """redis-py client whose commands obey the deadline, a breaker and the ``redis`` retry policy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_pool.connection_kwargs["retry"] = Retry(NoBackoff(), 0)
        kw = self.connection_pool.connection_kwargs
        self.breaker_name = f"redis:{str(kw.get('host', kw.get('path', '?')))[:100]}:{kw.get('port', '')}/{kw.get('db', 0)}"
        self.breaker = circuit_breaker(self.breaker_name)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        breaker = self.breaker
        if is_idempotent(args):
            return retry("redis").call(breaker.call, super().execute_command, *args, **options)
        return breaker.call(super().execute_command, *args, **options)

    def _send_command_parse_response(self, conn: Any, command_name: Any, *args: Any, **options: Any) -> Any:
        left = remaining()
        if left is None:
            return super()._send_command_parse_response(conn, command_name, *args, **options)
        if left <= 0:
            raise DeadlineExceeded(f"deadline passed before redis {str(command_name)[:20]}")
        conn.connect()
        limit = conn.socket_timeout
        conn.update_current_socket_timeout(left if limit is None else min(left, limit))
        try:
            return super()._send_command_parse_response(conn, command_name, *args, **options)
        except redis.TimeoutError as exc:
            if remaining() == 0.0:
                raise DeadlineExceeded(f"deadline passed during redis {str(command_name)[:20]}") from exc
            raise
        finally:
            conn.update_current_socket_timeout(-1)  # back to the connection's own timeout


class ResilientClient(DefaultClient):
    """django-redis ``CLIENT_CLASS`` that builds ``ResilientRedis`` clients."""

    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        options = dict(params.get("OPTIONS") or {})
        options.setdefault("REDIS_CLIENT_CLASS", "resilience.integrations.redis.client.ResilientRedis")
        super().__init__(server, {**params, "OPTIONS": options}, backend)
