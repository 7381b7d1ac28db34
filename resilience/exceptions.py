"""Every error the library raises, under one root so callers can catch them all."""

from __future__ import annotations


class ResilienceError(Exception):
    """Root of every error raised by django-resilience."""


class ConfigurationError(ResilienceError, ValueError):
    """A setting or argument is malformed; the message names the offending key."""


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


class RetryBudgetExhausted(ResilienceError):
    """A retry was refused because retries already make up too large a share of calls."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        super().__init__(f"retry budget of policy {policy!r} is exhausted")
