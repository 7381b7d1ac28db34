"""Polling helper for behaviour that crosses processes or threads (never a fixed sleep)."""

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 2.0) -> bool:
    """True as soon as ``predicate()`` is truthy; False if it is still falsy after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
