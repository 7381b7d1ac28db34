"""The current deadline inside every attempt botocore makes: none starts once it has passed, and
each one's connect and read timeouts are cut to the time the call has left.

botocore reads a client's timeouts once, when the client is made, and has one per-request override:
``request.context["read_timeout"]``, which ``URLLib3Session.send`` turns into the attempt's urllib3
``Timeout`` (``_get_request_timeout``, botocore 1.43.11 and later). ``before-send`` runs before every
attempt with the prepared request (its ``context`` is the call's request context), so the handler
here sets that override to ``min(client read_timeout, remaining())``, or raises ``DeadlineExceeded``
when nothing is left. Nothing is sent by this module.

The connect timeout has no per-request override in botocore: its ``Timeout`` keeps the client's
``connect_timeout`` (botocore's default: 60 s). So each protected client's HTTP session becomes a
``DeadlineBoundSession``: botocore's own ``URLLib3Session`` (same pools, proxies, TLS) whose
per-request timeout also caps the connect at the time left, which the handler puts in the context
beside the read timeout. A session of another class (a custom ``http_session_cls``) is left alone:
its connects keep the client's ``connect_timeout``.
"""

from __future__ import annotations

from typing import Any

from botocore.httpsession import URLLib3Session
from urllib3.util.timeout import Timeout

from resilience.core.deadline import remaining
from resilience.exceptions import ConfigurationError, DeadlineExceeded

READ_TIMEOUT = "read_timeout"  # botocore's per-request read-timeout override in the request context
CONNECT_TIMEOUT = "resilience_connect_timeout"  # ours: read by DeadlineBoundSession only
MINIMUM_BOTOCORE = "1.43.11"  # the first botocore that reads READ_TIMEOUT from the request context


def check_before_call() -> None:
    """``before-call``: a call that starts after its deadline raises before it is admitted anywhere."""
    if remaining() == 0.0:
        raise DeadlineExceeded("deadline passed before the AWS call")


def bound_attempt(request: Any) -> None:
    """``before-send``: cut this attempt's connect and read timeouts to the time left, or raise
    ``DeadlineExceeded`` (botocore hands the error to ``needs-retry``, where it is never retried)."""
    left = remaining()
    if left is None:
        return
    if left <= 0.0:
        raise DeadlineExceeded("deadline passed before an AWS attempt was sent")
    context = getattr(request, "context", None)
    if context is None:  # a request botocore's endpoint did not make: nothing to bound
        return
    configured = getattr(context.get("client_config"), "read_timeout", None)
    context[READ_TIMEOUT] = left if configured is None else min(float(configured), left)
    context[CONNECT_TIMEOUT] = left


class DeadlineBoundSession(URLLib3Session):
    """botocore's HTTP session whose per-request timeout caps the connect too (see the module)."""

    def _get_request_timeout(self, request: Any) -> Any:
        timeout = super()._get_request_timeout(request)
        left = (getattr(request, "context", None) or {}).get(CONNECT_TIMEOUT)
        if timeout is None or left is None:
            return timeout
        connect = timeout.connect_timeout
        if isinstance(connect, int | float) and connect <= left:
            return timeout
        return Timeout(connect=left, read=timeout.read_timeout)


def bound_connects(endpoint: Any) -> None:
    """Make ``endpoint``'s HTTP session (a client's ``_endpoint``) a ``DeadlineBoundSession``.

    The object stays the same (its pools and settings are kept); only its class changes, to a
    subclass that overrides one method. botocore builds the session inside client creation with no
    argument to choose its class, so this is the one place to do it."""
    session = getattr(endpoint, "http_session", None)
    if type(session) is URLLib3Session:
        session.__class__ = DeadlineBoundSession


class BoundConnectsClient:
    """A base class added to protected clients (botocore's ``creating-client-class`` event, the way
    boto3 adds its own methods): once the client is made, its connects are bound by the deadline."""

    _endpoint: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound_connects(self._endpoint)


def add_bound_connects(base_classes: list[type], **kwargs: Any) -> None:
    """``creating-client-class``: put ``BoundConnectsClient`` first among the client's bases."""
    if BoundConnectsClient not in base_classes:
        base_classes.insert(0, BoundConnectsClient)


def require_request_timeouts() -> None:
    """botocore older than 1.43.11 ignores the per-request read timeout: a deadline could not cut an
    attempt, so protection refuses to run on it rather than promise what it cannot do."""
    if not hasattr(URLLib3Session, "_get_request_timeout"):
        raise ConfigurationError(
            f"resilience.integrations.aws needs botocore>={MINIMUM_BOTOCORE} (per-request timeouts, "
            "so a deadline can cut each attempt); upgrade boto3/botocore"
        )
