"""A view behind a breaker whose dependency is down, and 200 requests to it: what the metrics sinks'
tests compare with and without a failing sink (the responses, and the log lines they cost)."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpResponse
from django.urls import path

from resilience import CircuitOpenError, circuit_breaker


def _down() -> None:
    raise ConnectionError("down")


def protected(request: Any) -> HttpResponse:
    try:
        circuit_breaker("sink-view").call(_down)
    except CircuitOpenError:
        return HttpResponse("open", status=503)
    except ConnectionError:
        return HttpResponse("down", status=502)
    return HttpResponse("ok")


urlpatterns = [path("protected/", protected)]


def serve(client: Any, caplog: Any, sink: Any, *, close: bool = False) -> tuple[list[tuple[int, bytes]], list[str]]:
    """200 requests, the sink's interval flushed every 20 (and the sink closed at the end when
    ``close``): the responses, and the log lines they cost."""
    responses = []
    with caplog.at_level(logging.INFO, logger="resilience"):
        caplog.clear()
        for n in range(200):
            response = client.get("/protected/")
            responses.append((response.status_code, response.content))
            if sink is not None and n % 20 == 19:
                sink.flush()
        if sink is not None and close:
            sink.close()  # the sender has done all it will do: its lines are in
        return responses, [f"{r.name} {r.getMessage()}" for r in caplog.records]
