"""Configuration ``pings``: the view alone plus a middleware making two bare Redis round trips per request.

It is the floor of any design making the two Redis round trips per request that issue 12 allows (one
decision before authentication, one after): each is a ``PING`` written and its ``+PONG`` read on a
raw socket, the least any client can do for a round trip (redis-py's own ``ping()`` costs the client
about 137,000 instructions more; ``benchmarks/instructions.py``), so no stack can do better."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings

PING = b"*1\r\n$4\r\nPING\r\n"


def _command(*parts: str) -> bytes:
    encoded = [p.encode() for p in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


class TwoPings:
    """Two round trips on one persistent socket per worker (opened at the first request, after the fork), then the view."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        url = urlsplit(settings.BENCH_REDIS_URL)
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.password:
            self._round_trip(_command("AUTH", unquote(url.username or "default"), unquote(url.password)))

    def _round_trip(self, command: bytes) -> bytes:
        self.sock.sendall(command)
        reply = self.sock.recv(64)
        while not reply.endswith(b"\r\n"):
            reply += self.sock.recv(64)
        if not reply.startswith(b"+"):
            raise RuntimeError(f"Redis answered {reply[:80]!r}")
        return reply

    def __call__(self, request: Any) -> Any:
        self._round_trip(PING)
        self._round_trip(PING)
        return self.get_response(request)
