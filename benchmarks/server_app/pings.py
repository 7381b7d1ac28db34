"""Configuration ``pings``: the view alone plus a middleware making two redis-py PINGs per request.

It is the floor of any design making the two Redis round trips per request that issue 12 allows (one
decision before authentication, one after): what the round trips alone cost the server, with none of
the work a decision does around them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings


class TwoPings:
    """Two PINGs on one persistent redis-py connection, then the view."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.client = redis.Redis.from_url(settings.BENCH_REDIS_URL)

    def __call__(self, request: Any) -> Any:
        self.client.ping()
        self.client.ping()
        return self.get_response(request)
