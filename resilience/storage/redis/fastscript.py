"""EVALSHA with as little client work as possible, for the rate limiter's hot path.

redis-py 8 spends more Python on each command (a pool lock, a ``poll()`` on the pooled
connection, observability hooks, a retry wrapper) than a round trip to a nearby Redis takes. A
rate-limit decision should cost about one round trip, so its script goes out here as bytes packed
in one go, on an idle connection taken from a lock-free stack: one ``sendall``, one read. Connections
are built from the client's own pool settings (address, TLS, password, database, timeouts, RESP
version, health checks); a client this cannot reproduce (a cluster, Sentinel or another pool
class, a single-connection client) goes through redis-py's normal ``evalsha``.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection

_forks = 0  # bumped in a forked child: connections inherited from the parent are never used there


def _after_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_after_fork)


MAX_PIECES = 4096  # argument values whose encoding is remembered (a policy's few numbers, not identities)


class FastScript:
    """One Lua script, run by ``script(keys, args)``; ``args`` are ints or str. Errors are redis-py's."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._head = f"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n{self.sha}\r\n$%d\r\n%d\r\n"  # argc, len(numkeys), numkeys
        self._pieces: dict[int | str, str] = {}
        self._factory = _connection_factory(client)
        self._idle: deque[AbstractConnection] = deque()  # append/pop are atomic: no lock on the hot path
        self._forks = _forks

    def __call__(self, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        if self._factory is None:
            return self._through_client(keys, args)
        n = len(keys)
        parts = [self._head % (3 + n + len(args), len(str(n)), n)]
        for key in keys:  # RESP counts bytes: str length only where that is the same
            parts.append(f"${len(key) if key.isascii() else len(key.encode())}\r\n{key}\r\n")
        pieces = self._pieces
        for arg in args:
            piece = pieces.get(arg)
            if piece is None:
                piece = _piece(arg)
                if len(pieces) < MAX_PIECES:
                    pieces[arg] = piece
            parts.append(piece)
        command = ("".join(parts).encode(),)
        connection = self._take()
        try:
            connection.send_packed_command(command)
            try:
                return connection.read_response()
            except redis.exceptions.NoScriptError:  # a restarted or flushed server: load it, once
                self._client.script_load(self._source)
                connection.send_packed_command(command)
                return connection.read_response()
        except redis.exceptions.ResponseError:
            raise  # the reply was read whole: the connection is clean
        except BaseException:
            connection.disconnect()  # a reply may still be on its way: never let another call read it
            raise
        finally:
            self._idle.append(connection)

    def _take(self) -> AbstractConnection:
        if self._forks != _forks:  # in a forked child: the parent's sockets are not ours to use or close
            self._idle, self._forks = deque(), _forks
        try:
            return self._idle.pop()
        except IndexError:
            assert self._factory is not None
            return self._factory()

    def _through_client(self, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        try:
            return self._client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self._client.script_load(self._source)
            return self._client.evalsha(self.sha, len(keys), *keys, *args)

    def close(self) -> None:
        """Close the idle connections (they reconnect when next used)."""
        for connection in list(self._idle):
            connection.disconnect()


def _piece(arg: int | str) -> str:
    text = str(arg)
    return f"${len(text.encode())}\r\n{text}\r\n"


def _connection_factory(client: Any) -> Callable[[], AbstractConnection] | None:
    """How to open a connection like the client's pooled ones; None when that is not safe to copy."""
    pool: Any = getattr(client, "connection_pool", None)
    if getattr(client, "connection", None) is not None or type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return None
    connection_class = pool.connection_class
    if not (isinstance(connection_class, type) and issubclass(connection_class, AbstractConnection)):
        return None
    kwargs = dict(pool.connection_kwargs)
    return lambda: connection_class(**kwargs)
