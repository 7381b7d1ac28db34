"""django-resilience: circuit breakers, retries, deadlines, rate limits and fallbacks for Django."""

from .decorators import circuit_breaker
from .exceptions import CallTimeout, CircuitOpenError, ConfigurationError, ResilienceError, UnknownBreakerError
from .registry import breakers

__all__ = [
    "CallTimeout",
    "CircuitOpenError",
    "ConfigurationError",
    "ResilienceError",
    "UnknownBreakerError",
    "breakers",
    "circuit_breaker",
]
__version__ = "0.1.0"
