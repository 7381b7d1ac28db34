"""django-resilience: circuit breakers, retries, deadlines, rate limits and fallbacks for Django."""

from .core.deadline import deadline, remaining
from .core.retry import RetryPolicy
from .decorators import circuit_breaker
from .exceptions import (
    CallTimeout,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceeded,
    ResilienceError,
    RetryBudgetExhausted,
    UnknownBreakerError,
)
from .fallback import fallback
from .registry import breakers
from .retry import retry

__all__ = [
    "CallTimeout",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceeded",
    "RetryBudgetExhausted",
    "RetryPolicy",
    "ResilienceError",
    "UnknownBreakerError",
    "breakers",
    "circuit_breaker",
    "deadline",
    "fallback",
    "remaining",
    "retry",
]
__version__ = "0.1.0"
