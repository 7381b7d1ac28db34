"""Configuration ``pings``: the view alone plus a middleware making two bare Redis round trips per request.

It is the floor of any design making the two Redis round trips per request that issue 12 allows (one
decision before authentication, one after): each is a ``PING`` written and its ``+PONG`` read on a
raw socket, the least any client can do for a round trip (redis-py's own ``ping()`` costs the client
about 137,000 instructions more; ``benchmarks/instructions.py``), so no stack can do better."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from benchmarks.harness import bare_round_trip


class TwoPings:
    """Two round trips on one persistent socket per worker (opened at the first request, after the fork), then the view."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.round_trip = bare_round_trip(settings.BENCH_REDIS_URL)

    def __call__(self, request: Any) -> Any:
        self.round_trip()
        self.round_trip()
        return self.get_response(request)
