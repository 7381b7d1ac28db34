"""A pretend upstream service whose failure rate the demo can change at run time."""

import random
import threading

_lock = threading.Lock()
failure_rate = 0.0


def set_failure_rate(rate: float) -> None:
    global failure_rate
    with _lock:
        failure_rate = min(max(rate, 0.0), 1.0)


def fetch_quote() -> dict:
    if random.random() < failure_rate:
        raise ConnectionError("upstream quote service failed")
    return {"quote": "Everything fails, all the time.", "author": "Werner Vogels"}
