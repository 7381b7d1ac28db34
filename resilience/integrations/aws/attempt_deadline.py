"""The current deadline inside every attempt botocore makes: none starts once it has passed, and
each one's read timeout is cut to the time the call has left.

botocore reads a client's timeouts once, when the client is made, and has one per-request override:
``request.context["read_timeout"]``, which ``URLLib3Session.send`` turns into the attempt's read
timeout (``httpsession._get_request_timeout``). ``before-send`` runs before every attempt with the
prepared request (its ``context`` is the call's request context), so the handler here sets that
override to ``min(client read_timeout, remaining())``, or raises ``DeadlineExceeded`` when nothing
is left. Nothing is sent by this module and nothing of botocore is replaced.

The connect timeout has no per-request override in botocore: a new connection may take up to the
client's ``connect_timeout`` (botocore's default is 60 s), so give protected clients a short one.
"""

from __future__ import annotations

from typing import Any

from resilience.core.deadline import remaining
from resilience.exceptions import DeadlineExceeded

READ_TIMEOUT = "read_timeout"  # botocore's per-request read-timeout override in the request context


def check_before_call() -> None:
    """``before-call``: a call that starts after its deadline raises before it is admitted anywhere."""
    if remaining() == 0.0:
        raise DeadlineExceeded("deadline passed before the AWS call")


def bound_attempt(request: Any) -> None:
    """``before-send``: cut this attempt's read timeout to the time left, or raise ``DeadlineExceeded``
    (botocore hands the error to ``needs-retry``, where it is never retried)."""
    left = remaining()
    if left is None:
        return
    if left <= 0.0:
        raise DeadlineExceeded("deadline passed before an AWS attempt was sent")
    context = getattr(request, "context", None)
    if context is None:  # a request botocore's endpoint did not make: nothing to bound
        return
    config = context.get("client_config")
    configured = getattr(config, "read_timeout", None)
    context[READ_TIMEOUT] = left if configured is None else min(float(configured), left)
