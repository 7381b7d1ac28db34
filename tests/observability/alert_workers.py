"""Entry point of the spawned worker processes of the alert tests (fresh interpreters)."""

from __future__ import annotations

import os
import time
import traceback
from typing import Any


def tripping_worker(resilience: dict[str, Any], smtp_port: int, barrier: Any, results: Any) -> None:
    """Fail through the shared breaker until it rejects, then (after every worker saw it open) call
    until it is closed again; report the breaker events this process emitted, after its alerts left."""
    try:
        from tests.storage.workers import setup

        setup(resilience)
        from django.test.utils import override_settings

        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp_port,
            EMAIL_TIMEOUT=5,
        ).enable()  # fmt: skip
        from resilience import CircuitOpenError, circuit_breaker
        from resilience.observability.alerts.dispatch import dispatcher
        from resilience.signals import event_emitted

        seen: dict[str, int] = {}

        def receive(sender: Any, event: Any, **kwargs: Any) -> None:
            key = f"{event.area}:{event.kind}:{event.fields.get('new_state', '')}"
            seen[key] = seen.get(key, 0) + 1

        event_emitted.connect(receive, weak=False)
        breaker = circuit_breaker("shared")
        breaker.call(lambda: None)  # created, synced, subscribed

        def fail() -> None:
            raise ConnectionError("upstream down")

        barrier.wait(60)
        rejected, deadline = 0, time.monotonic() + 20
        while rejected < 5 and time.monotonic() < deadline:
            try:
                breaker.call(fail)
            except CircuitOpenError:
                rejected += 1
            except ConnectionError:
                pass
        barrier.wait(60)  # every worker saw the breaker open
        deadline = time.monotonic() + 20
        while breaker.state != "closed" and time.monotonic() < deadline:
            try:
                breaker.call(lambda: None)
            except CircuitOpenError:
                time.sleep(0.02)  # a real outage in real processes: the open period is wall time
        barrier.wait(60)  # every worker saw it closed
        current = dispatcher()
        flushed = current.flush(30) if current is not None else False
        results.put({"pid": os.getpid(), "rejected": rejected, "state": breaker.state, "flushed": flushed, **seen})
    except Exception:  # noqa: BLE001 - reported to the test, which fails with it
        results.put({"error": traceback.format_exc()})
        barrier.abort()
