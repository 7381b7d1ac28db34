"""A circuit breaker per AWS service and region, ``aws:<service>:<region>``, around every API call.

``<service>`` is botocore's service name, the one given to ``boto3.client()`` (``s3``,
``secretsmanager``, ``dynamodb``); ``<region>`` is the client's (``context["client_region"]``),
``global`` when it has none. The breakers come from the registry, so ``RESILIENCE["BREAKERS"]``
(and its ``default``) configures them like any other, and their state is shared through Redis.

A call is admitted in ``before-call`` (``CircuitOpenError`` there: botocore sends nothing) and
settled once, in ``after-call`` or ``after-call-error``: **one outcome per API call**, however many
attempts the retry layer made inside it. A call whose retry succeeded is a success (the service
answered), and retries cannot multiply the failures a breaker counts. 5xx, throttling and
connection errors count as failures; any other 4xx is a success (not the service's fault).
The breaker's ``timeout`` does not apply (the call runs inside botocore); the deadline bounds it.
A call cut by the deadline counts for nothing (a caller's short deadline must not open a shared
breaker), except inside ``counted_share()``: a ``failover_client`` region given a share of the
deadline long enough to count (``failover_min_share``) that did not answer in it failed, once, as a
call that ran past its own timeout does.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from resilience.breakers.decorator import BreakerHandle, circuit_breaker
from resilience.core.breaker import cut_by_deadline
from resilience.exceptions import CallTimeout
from resilience.integrations.aws.classifiers import service_fault

TICKET = "resilience_aws_breaker"  # key of the call's (breaker, ticket) in botocore's request context
_share: contextvars.ContextVar[float | None] = contextvars.ContextVar("resilience_aws_counted_share", default=None)


@contextmanager
def counted_share(seconds: float) -> Iterator[None]:
    """Inside: a call cut by the (share's) deadline is a failure of its breaker, a ``CallTimeout``."""
    token = _share.set(seconds)
    try:
        yield
    finally:
        _share.reset(token)


def breaker_name(model: Any, context: dict[str, Any]) -> str:
    """``aws:<service>:<region>`` of one call: its operation model and request context."""
    return f"aws:{model.service_model.service_name}:{context.get('client_region') or 'global'}"


class ServiceBreakers:
    """Admits and settles calls; one breaker handle per name, made on first use."""

    def __init__(self) -> None:
        self._handles: dict[str, BreakerHandle] = {}

    def handle(self, name: str) -> BreakerHandle:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles.setdefault(name, circuit_breaker(name))
        return handle

    def admit(self, model: Any, context: dict[str, Any]) -> None:
        """Take the call's admission (or raise ``CircuitOpenError``) and keep it in ``context``."""
        breaker = self.handle(breaker_name(model, context)).breaker
        context[TICKET] = (breaker, breaker.admit())

    def settle(self, context: dict[str, Any], exc: BaseException | None) -> None:
        """Record the call's outcome once; nothing for a call this layer did not admit."""
        entry = context.pop(TICKET, None)
        if entry is not None:
            breaker, ticket = entry
            share = _share.get()
            if exc is not None and share is not None and cut_by_deadline(exc):
                exc = CallTimeout(breaker.name, share)  # the region's own time ran out: its failure
            breaker.finish(ticket, exc)

    def settle_response(self, context: dict[str, Any], http_response: Any, parsed: dict[str, Any], model: Any) -> None:
        """``after-call``: a response came back; only 5xx and throttling count against the service."""
        status = getattr(http_response, "status_code", None)
        failure = None
        if status is not None and status >= 300:
            code = (parsed.get("Error") or {}).get("Code")
            if service_fault(code, status):
                failure = ClientError(parsed, model.name)
        self.settle(context, failure)
