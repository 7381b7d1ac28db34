"""A streaming response keeps its route's permit and deadline until it is closed, not until the view returns.

``StreamingHttpResponse`` and ``FileResponse`` produce their body after the middleware has returned;
without this, six 5-second streams on a route capped at 2 all ran at once. The middleware wraps the
response's ``streaming_content``: each chunk is produced under the request's deadline (adapters in
the generator are bounded by it), a stream still running when the deadline passes is cut with
``DeadlineExceeded`` (so the server aborts the connection and the client can tell the body is
incomplete), and the permit goes back when the server closes the response — or, at the latest,
when the wrapper is garbage-collected.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from resilience.core.deadline import deadline
from resilience.core.event import Event
from resilience.exceptions import DeadlineExceeded
from resilience.observability.events import emit


class _Guard:
    """What both kinds of stream share: the deadline's absolute time and a release that runs once."""

    def __init__(self, release: Callable[[], None], at: float | None, label: str) -> None:
        self._at, self._label = at, label
        self._release = weakref.finalize(self, release)  # once: at close(), else when collected

    def _left(self) -> float | None:
        if self._at is None:
            return None
        left = self._at - time.monotonic()
        if left <= 0:
            emit(Event("middleware", "stream_deadline_exceeded", self._label, {}))
            self.close()
            raise DeadlineExceeded("the response stream outlived the request deadline")
        return left

    def close(self) -> None:
        self._release()


class SyncStream(_Guard):
    def __init__(self, inner: Any, release: Callable[[], None], at: float | None, label: str) -> None:
        super().__init__(release, at, label)
        self._inner: Iterator[Any] = iter(inner)

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        left = self._left()
        if left is None:
            return next(self._inner)
        with deadline(left):
            return next(self._inner)


class AsyncStream(_Guard):
    def __init__(self, inner: Any, release: Callable[[], None], at: float | None, label: str) -> None:
        super().__init__(release, at, label)
        self._inner: AsyncIterator[Any] = aiter(inner)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        left = self._left()
        if left is None:
            return await anext(self._inner)
        with deadline(left):
            return await anext(self._inner)


def guard(response: Any, release: Callable[[], None], at: float | None, label: str) -> None:
    """Make ``response`` (streaming) hold ``release`` until it is closed, and produce its chunks by ``at``."""
    stream_class = AsyncStream if response.is_async else SyncStream
    response.streaming_content = stream_class(response.streaming_content, release, at, label)
