"""Every error the library raises, under one root so callers can catch them all.

Only Django's own error classes are imported here: ``DatabaseUnavailable`` is also an
``OperationalError`` and ``MissingDependency`` an ``ImproperlyConfigured``, so code that catches
Django's errors keeps catching them.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.utils import OperationalError


class ResilienceError(Exception):
    """Root of every error raised by django-resilience."""


class ConfigurationError(ResilienceError, ValueError):
    """A setting or argument is malformed; the message names the offending key."""


class MissingDependency(ResilienceError, ImproperlyConfigured, ImportError):
    """An optional package is not installed; the message names the extra that brings it. Still an
    ``ImportError``, so ``try: import ... except ImportError`` keeps working."""


class CircuitOpenError(ResilienceError):
    """The breaker rejected the call without running it.

    ``retry_after`` is the number of seconds until the next probe may run, or ``None``
    when the breaker was opened by hand and stays open until someone resets it.
    """

    def __init__(self, name: str, retry_after: float | None, state: str = "open") -> None:
        self.name = name
        self.retry_after = retry_after
        self.state = state
        when = "until reset" if retry_after is None else f"retry after {retry_after:.3f}s"
        super().__init__(f"circuit {name!r} is {state}; {when}")


class CallTimeout(ResilienceError, TimeoutError):
    """A protected call ran longer than its breaker's ``timeout``."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"call through circuit {name!r} exceeded its {timeout}s timeout")


class UnknownBreakerError(ResilienceError, KeyError):
    """No breaker of that name is configured, used in this process, or known to the store."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown circuit breaker {self.name[:80]!r}"


class StoreUnavailableError(ResilienceError):
    """The shared store (Redis) could not be reached for an operation that must reach it."""


class DeadlineExceeded(ResilienceError, TimeoutError):
    """The current deadline has passed (or would pass before the next attempt could start)."""

    def __init__(self, message: str = "deadline exceeded", *, budget: float | None = None) -> None:
        self.budget = budget
        super().__init__(message)


class DatabaseUnavailable(CircuitOpenError, OperationalError):
    """The database could not be reached, or the connection was lost and the statement could not be
    retried safely. ``ResilienceMiddleware`` answers 503 with ``Retry-After`` (it is a
    ``CircuitOpenError``); code that catches Django's ``DatabaseError``/``OperationalError`` still
    catches it. Unlike a plain ``CircuitOpenError``, the call may have run: ``sent`` is True when the
    statement (or a COMMIT) had been sent, so a write may have been applied — make writes that a
    client re-sends idempotent (an idempotency key)."""

    def __init__(self, alias: str, message: str, *, sent: bool, retry_after: float = 1.0) -> None:
        CircuitOpenError.__init__(self, f"postgres:{alias}", retry_after, "unavailable")
        self.args = (f"database {alias!r} unavailable: {message}",)
        self.alias, self.sent = alias, sent


class CredentialsUnavailable(ResilienceError):
    """No unexpired AWS credentials for the role: STS and the shared copy both failed us."""


class EntraUnavailable(ResilienceError):
    """No usable metadata or signing keys: the identity provider is down and nothing fresh enough is
    cached. The Entra authentication answers 503 with ``Retry-After: retry_after``."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("the identity provider is unavailable and no usable signing keys are cached")
