"""django-resilience: circuit breakers, retries, deadlines, rate limits and fallbacks for Django."""

from resilience.breakers.decorator import circuit_breaker
from resilience.breakers.registry import breakers
from resilience.core.deadline import deadline, remaining
from resilience.core.retry import RetryPolicy
from resilience.exceptions import (
    CallTimeout,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceeded,
    ResilienceError,
    UnknownBreakerError,
)
from resilience.fallbacks.chain import fallback
from resilience.retries.policies import retry

__all__ = [
    "CallTimeout",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceeded",
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
