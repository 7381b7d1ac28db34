"""The one retry layer of protected AWS clients: botocore's ``needs-retry`` event, decided by the
``aws`` retry policy (attempts, backoff, the shared retry budget, ``max_time``, the deadline).

Why ``needs-retry``: it is botocore's own retry hook. After every attempt the endpoint asks it
whether to send again and how long to sleep (a number of seconds; ``None``: no retry), and it
re-signs and re-sends the request itself (streams rewound, a fresh signature). botocore's own
handler sits on the same event; with its retries off (``total_max_attempts`` 1, which ``protect()``
ensures) it always answers ``None``, so this handler decides alone and attempts never multiply.
Wrapping at ``before-call``/``after-call`` instead would mean re-entering the client from a handler.

What is retried is what botocore's standard mode retries (``classifiers.retry_kind``). Throttling
backs off from ``RESILIENCE["AWS"]["throttling_base"]`` (1 s) instead of the policy's ``base``;
``x-amz-retry-after`` (milliseconds) lengthens the wait. No wait ends past the deadline: the layer
gives up with the last error instead (a ``retry give_up`` event, ``reason=deadline``), and an
attempt that failed because the deadline ran out raises ``DeadlineExceeded`` (chained to it).
"""

from __future__ import annotations

import threading
from dataclasses import fields, is_dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from resilience.conf import resilience_settings
from resilience.core.backoff import Backoff
from resilience.core.deadline import remaining
from resilience.core.retry import Retrying, RetryPolicy
from resilience.exceptions import DeadlineExceeded
from resilience.integrations.aws.classifiers import THROTTLING, retry_kind
from resilience.observability.events import emit
from resilience.retries.policies import named

STATE = "resilience_aws_retry"  # key of the call's [started, previous delay, attempts] in botocore's request context
RETRY_AFTER_HEADER = "x-amz-retry-after"


def _always(exc: BaseException) -> bool:
    return True  # the layer classifies with what only the hook knows (status, headers, operation model)


def throttling_backoff(backoff: Backoff, base: float) -> Backoff:
    """``backoff`` starting from at least ``base`` seconds: the policy's strategy and cap, a longer start."""
    if is_dataclass(backoff):
        names = {f.name for f in fields(backoff)}
        for key in ("base", "delay"):  # the jittered and exponential strategies; Constant
            if key in names:
                return replace(backoff, **{key: max(getattr(backoff, key), base)})  # type: ignore[type-var]
    return backoff  # a composed strategy: used as configured


def retry_after(http_response: Any) -> float | None:
    """Seconds from ``x-amz-retry-after`` (milliseconds), or None when absent or malformed."""
    value: Any = getattr(http_response, "headers", {}).get(RETRY_AFTER_HEADER)
    try:
        seconds = int(value) / 1000.0
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds >= 0 else None


class RetryLayer:
    """The ``needs-retry`` handler and its per-call bookkeeping, for one named policy."""

    def __init__(self, policy: str = "aws") -> None:
        self.policy_name = policy
        self._lock = threading.Lock()
        self._built: tuple[RetryPolicy, float, Retrying, Retrying] | None = None

    def retryings(self) -> tuple[Retrying, Retrying]:
        """(transient, throttling) loops of the current policy; rebuilt when the settings change."""
        policy = named(self.policy_name).retrying.policy
        base = float(resilience_settings.AWS["throttling_base"])
        built = self._built
        if built is None or built[0] is not policy or built[1] != base:
            transient = replace(policy, retry_on=_always)
            throttled = replace(transient, backoff=throttling_backoff(policy.backoff, base))
            with self._lock:
                built = self._built = (policy, base, Retrying(transient, emit=emit), Retrying(throttled, emit=emit))
        return built[2], built[3]

    def start(self, context: dict[str, Any], transient: Retrying) -> None:
        """``before-call``: count the call in the budget and open its bookkeeping (``transient``: the
        loop ``retryings()`` gave the caller, so it is not looked up twice per call)."""
        budget = transient.policy.budget
        if budget is not None:
            budget.record_call()
        context[STATE] = [transient.clock.monotonic() if transient.policy.max_time is not None else 0.0, 0.0, 1]

    def finish(self, context: dict[str, Any], succeeded: bool) -> None:
        """``after-call`` / ``after-call-error``: the call's outcome, with the attempts it took."""
        state = context.get(STATE)
        if state is not None:
            self.retryings()[0].record_outcome(succeeded, state[2])

    def needs_retry(
        self, response: Any, attempts: int, caught_exception: BaseException | None, request_dict: dict[str, Any], operation: Any
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None: the last attempt's result stands."""
        state = request_dict.get("context", {}).get(STATE)
        if state is None:  # a call this layer did not start
            return None
        if caught_exception is not None:
            if isinstance(caught_exception, DeadlineExceeded):
                return None
            if remaining() == 0.0:  # the attempt's timeout was the deadline's
                raise DeadlineExceeded("deadline passed during an AWS request") from caught_exception
            code, status, exc = None, None, caught_exception
        else:
            http_response, parsed = response
            status = http_response.status_code
            if status < 300:
                return None
            code = (parsed.get("Error") or {}).get("Code")
            exc = ClientError(parsed, operation.name)
            exc.retry_after = retry_after(http_response)  # type: ignore[attr-defined] # read by Retrying
        kind = retry_kind(code, status, caught_exception, operation)
        if kind is None:
            return None
        transient, throttled = self.retryings()
        delay = (throttled if kind == THROTTLING else transient).next_delay(exc, attempts, state[0], state[1])
        if delay is not None:
            state[1], state[2] = delay, attempts + 1
        return delay
