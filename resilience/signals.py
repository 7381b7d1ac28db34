"""Signals of django-resilience.

``event_emitted``: sent once for every decision the library makes.
    kwargs: ``event`` — a ``resilience.core.event.Event`` with ``area`` ("breaker", ...),
    ``kind`` ("transition", "rejected", ...), ``name`` (the breaker's name) and ``fields``.
    Breaker transitions carry ``old_state``, ``new_state``, ``reason``, ``generation``,
    ``failure_rate``, ``slow_rate``, ``calls`` and, when manual, ``actor``; rejections carry
    ``state`` and ``retry_after``. ``generation`` is unique and only grows (at least the store's
    clock in microseconds, so about 1.8e15: compare generations, never count on small numbers).
    The sender is the string ``"resilience"``.
"""

from django.dispatch import Signal

event_emitted = Signal()
