"""Sliding windows of call outcomes, O(1) per call (subtract-on-evict, like resilience4j)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowSnapshot:
    calls: int
    failures: int
    slow: int

    @property
    def failure_rate(self) -> float:
        """Percentage of failed calls in the window (0.0 when empty)."""
        return 100.0 * self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        """Percentage of slow calls in the window (0.0 when empty)."""
        return 100.0 * self.slow / self.calls if self.calls else 0.0


class CountWindow:
    """The last ``size`` calls, kept in a ring with running totals."""

    __slots__ = ("_ring", "_pos", "_calls", "_failures", "_slow")

    def __init__(self, size: int) -> None:
        self._ring = bytearray(size)  # bit 0: recorded, bit 1: failure, bit 2: slow
        self._pos = 0
        self._calls = self._failures = self._slow = 0

    def record(self, now: float, failure: bool, slow: bool) -> tuple[int, int, int]:
        """Add one call; returns (calls, failures, slow) now in the window."""
        ring, pos = self._ring, self._pos
        old = ring[pos]
        if old:
            self._calls -= 1
            self._failures -= (old >> 1) & 1
            self._slow -= (old >> 2) & 1
        ring[pos] = 1 | (failure << 1) | (slow << 2)
        self._calls += 1
        self._failures += failure
        self._slow += slow
        self._pos = pos + 1 if pos + 1 < len(ring) else 0
        return self._calls, self._failures, self._slow

    def snapshot(self, now: float) -> WindowSnapshot:
        return WindowSnapshot(self._calls, self._failures, self._slow)


class TimeWindow:
    """Calls of the last ``seconds`` seconds, in one-second buckets with running totals."""

    __slots__ = ("_size", "_calls", "_failures", "_slow", "_head", "_totals")

    def __init__(self, seconds: int) -> None:
        self._size = seconds
        self._calls = [0] * seconds
        self._failures = [0] * seconds
        self._slow = [0] * seconds
        self._head = -1  # the epoch second of the newest bucket
        self._totals = [0, 0, 0]

    def _advance(self, second: int) -> None:
        head = self._head
        if second <= head:
            return
        size, totals = self._size, self._totals
        for s in range(max(head + 1, second - size + 1), second + 1):
            i = s % size
            totals[0] -= self._calls[i]
            totals[1] -= self._failures[i]
            totals[2] -= self._slow[i]
            self._calls[i] = self._failures[i] = self._slow[i] = 0
        self._head = second

    def record(self, now: float, failure: bool, slow: bool) -> tuple[int, int, int]:
        """Add one call; returns (calls, failures, slow) now in the window."""
        second = math.floor(now)
        if second > self._head:
            self._advance(second)
        else:  # a racing thread with an older timestamp: count it in the newest bucket
            second = self._head
        i = second % self._size
        self._calls[i] += 1
        self._failures[i] += failure
        self._slow[i] += slow
        totals = self._totals
        totals[0] += 1
        totals[1] += failure
        totals[2] += slow
        return totals[0], totals[1], totals[2]

    def snapshot(self, now: float) -> WindowSnapshot:
        self._advance(math.floor(now))
        return WindowSnapshot(*self._totals)


Window = CountWindow | TimeWindow
