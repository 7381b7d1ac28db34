"""``protect(session_or_client)`` and ``session()``: AWS calls through a breaker per service and
region, one retry layer (the ``aws`` policy) and the deadline in every attempt.

Everything is installed on botocore's event system; nothing of boto3 or botocore is patched:

    ``before-call``       deadline check, botocore's retries checked off, breaker admission, budget
    ``before-send``       each attempt's connect and read timeouts cut to the deadline (``attempt_deadline``)
    ``needs-retry``       the retry decision (``retry_layer``)
    ``after-call``        the breaker's outcome from the response (``service_breakers``)
    ``after-call-error``  the breaker's outcome from the error

botocore copies a session's event emitter into each client when the client is made, so a
protected session protects the clients made from it afterwards (its ``creating-client-class``
handler gives each such client the base class that bounds its connects by the deadline); a client made earlier needs
``protect(client)``. Every handler is registered with a ``unique_id``: protecting twice (or a
client of a protected session) registers nothing more.

botocore's own retries must be off, or attempts multiply (its default client makes up to 5 per
call). ``protect(session)`` merges ``retries={"total_max_attempts": 1}`` into the session's default
client config (and, when the session has none, a 2 s ``connect_timeout`` instead of botocore's 60 s: the
deadline caps each connect, but a call made without a deadline has only this bound; a ``Config``
given to the session or the client wins); ``protect(client)`` refuses a client that retries on its own, and a call from a
client whose own config turns botocore's retries back on fails with ``ConfigurationError``.
"""

from __future__ import annotations

from typing import Any, TypeVar

try:
    import boto3
    from botocore.client import BaseClient
    from botocore.config import Config
    from botocore.session import Session as BotocoreSession
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without boto3
    from resilience.integrations.extras import missing

    raise missing("boto3", "resilience.integrations.aws.protection") from exc

from resilience.exceptions import ConfigurationError
from resilience.integrations.aws.attempt_deadline import (
    add_bound_connects,
    bound_attempt,
    bound_connects,
    check_before_call,
    require_request_timeouts,
)
from resilience.integrations.aws.config import CONNECT_TIMEOUT, botocore_config, retries_off
from resilience.integrations.aws.retry_layer import RetryLayer
from resilience.integrations.aws.service_breakers import ServiceBreakers

T = TypeVar("T")
UNIQUE_ID = "resilience.aws.{event}"


def _own_retries(retries: Any, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what} makes its own retries (botocore retries={retries!r}); protected AWS clients retry "
        "with the aws policy only: create it with config=resilience.integrations.aws.botocore_config(...) "
        "or from resilience.integrations.aws.session()"
    )


class Protection:
    """The event handlers; per-call state lives in botocore's request context, so one instance
    serves every protected client and thread."""

    def __init__(self) -> None:
        self.breakers = ServiceBreakers()
        self.retries = RetryLayer("aws")

    def before_call(self, model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        check_before_call()
        config = context.get("client_config")
        if not retries_off(config):
            raise _own_retries(getattr(config, "retries", None), f"this {model.service_model.service_name} client")
        transient, _ = self.retries.retryings()  # the policy from settings: a malformed one raises before any admission
        self.breakers.admit(model, context)  # CircuitOpenError: nothing is sent, nothing is counted
        self.retries.start(context, transient)

    def before_send(self, request: Any, **kwargs: Any) -> None:
        bound_attempt(request)

    def needs_retry(
        self,
        response: Any,
        attempts: int,
        caught_exception: BaseException | None,
        request_dict: dict[str, Any],
        operation: Any = None,
        **kwargs: Any,
    ) -> float | None:
        return self.retries.needs_retry(response, attempts, caught_exception, request_dict, operation)

    def after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        self.breakers.settle_response(context, http_response, parsed, model)
        self.retries.finish(context, getattr(http_response, "status_code", 500) < 300)

    def after_call_error(self, exception: BaseException, context: dict[str, Any], **kwargs: Any) -> None:
        self.breakers.settle(context, exception)
        self.retries.finish(context, False)

    def handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-call", self.before_call),
            ("before-send", self.before_send),
            ("needs-retry", self.needs_retry),
            ("after-call", self.after_call),
            ("after-call-error", self.after_call_error),
        ]


protection = Protection()


def protect(target: T) -> T:
    """Protect a boto3/botocore session (and the clients made from it afterwards) or one client; returns it."""
    require_request_timeouts()
    if isinstance(target, BaseClient):
        if not retries_off(target.meta.config):
            raise _own_retries(target.meta.config.retries, f"the {target.meta.service_model.service_name} client")
        bound_connects(target._endpoint)  # noqa: SLF001 - the client is made already: no creating-client-class left
        register = target.meta.events.register
    else:
        core = target._session if isinstance(target, boto3.session.Session) else target  # noqa: SLF001 - boto3 has no public accessor
        if not isinstance(core, BotocoreSession):
            raise ConfigurationError(f"protect() takes a boto3 or botocore Session or a client, got {type(target).__name__}")
        default = core.get_default_client_config()
        if default is None:  # nothing chosen for this session: a connect timeout a deadline can live with
            default = Config(connect_timeout=CONNECT_TIMEOUT)
        core.set_default_client_config(botocore_config(default))
        register = core.register
        register("creating-client-class", add_bound_connects, unique_id=UNIQUE_ID.format(event="creating-client-class"))
    for event, handler in protection.handlers():
        register(event, handler, unique_id=UNIQUE_ID.format(event=event))
    return target


def session(**kwargs: Any) -> boto3.session.Session:
    """A protected ``boto3.Session`` (same arguments): every client made from it is protected."""
    return protect(boto3.session.Session(**kwargs))
