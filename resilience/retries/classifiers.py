"""The classifier of each built-in retry policy name: what is safe to retry for that dependency.

Each classifier answers "is this error transient?" and lives with its integration; importing this
module imports none of the optional libraries (each classifier imports its own when it first runs).
"""

from __future__ import annotations

from collections.abc import Callable

from resilience.core.retry import transient
from resilience.integrations.aws.classifiers import aws_transient
from resilience.integrations.http.classifiers import http_transient
from resilience.integrations.postgres.classifiers import (
    postgres_connect_refused,
    postgres_connection_lost,
    postgres_transaction_conflict,
)
from resilience.integrations.redis.classifiers import redis_transient

Classifier = Callable[[BaseException], bool]
CLASSIFIERS: dict[str, Classifier] = {
    "postgres": postgres_connection_lost,
    "postgres_transaction": postgres_transaction_conflict,
    "postgres_connect": postgres_connect_refused,
    "redis": redis_transient,
    "http": http_transient,
    "aws": aws_transient,
}


def classifier_for(policy: str) -> Classifier:
    """The classifier of a policy name: the built-in one, else ``transient`` (connection and timeout errors)."""
    return CLASSIFIERS.get(policy, transient)
