"""The benchmark's view: DRF, ``SELECT 1`` on the default database, a small JSON answer.

Its throttles come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]`` (settings.py), so the code is
the same in every configuration. ``BENCH_SERVER_PROBE=1`` (``server.py --check`` only, never while
timing) adds what the request saw: the deadline left and the session's ``statement_timeout``.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connection
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

PROBE = os.environ.get("BENCH_SERVER_PROBE") == "1"


@api_view(["GET"])
def bench(request: Request) -> Response:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
        if PROBE:
            return Response({"value": value, **_probe(cursor)})
    return Response({"value": value})


def _probe(cursor: Any) -> dict[str, Any]:
    from django.conf import settings

    cursor.execute("SHOW statement_timeout")
    seen: dict[str, Any] = {"statement_timeout": cursor.fetchone()[0]}
    if "resilience" in settings.INSTALLED_APPS:
        from resilience import remaining

        seen["remaining"] = remaining()
    return seen
