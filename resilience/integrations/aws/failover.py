"""``failover_client(service, regions=[...], operations={...})``: the declared operations of one AWS
service, answered by the first region that can, with a last-known-good value when none can.

One protected client per region (``protect()``/``session()``), so each region has its own breaker
``aws:<service>:<region>`` (shared through Redis), its own retries and the deadline. A call tries
the regions in order and moves on after an open breaker (nothing sent), a connection error, a read
timeout (every declared operation is safe to send twice), or a 5xx or throttling error once that
region's retries are spent. Any other error, a 4xx above all, is raised at once: another region
would give the same answer. No region is tried once the deadline has passed.

With a deadline, each region but the last gets an equal share of the time left (two regions:
half, then all that remains), so a region that hangs leaves the next one time to answer; a share of
``RESILIENCE["AWS"]["failover_min_share"]`` (0.5 s) or more that runs out counts as one failure of
that region's breaker (a 2 s route deadline gives the primary about 1 s: a black-holed primary
opens its breaker; the trial that set it at 1 s found it never did).

Order: the primary (the first region) while its breaker is closed or due a probe, then the others
by breaker state, closed before half-open before open, stable within each. A half-open primary is
tried first on purpose: its breaker closes only when probes succeed, and a failover client that
always went elsewhere would never send one. A probe that fails costs that call one region's try.

Only reads (by AWS's naming) and writes with an idempotency-token member may be declared: a write
that may have been applied in one region must not be applied again in another, so a write moves on
only when the failed region certainly applied nothing (``unapplied``). Every other attribute is the
primary's client's, never failed over.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from types import MappingProxyType
from typing import Any

try:
    import boto3
    from botocore import xform_name
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without boto3
    from resilience.integrations.extras import missing

    raise missing("boto3", "resilience.integrations.aws.failover") from exc

from resilience.breakers.decorator import BreakerHandle, circuit_breaker
from resilience.conf import resilience_settings
from resilience.core.deadline import deadline, remaining
from resilience.core.event import Event
from resilience.exceptions import CircuitOpenError, ConfigurationError, DeadlineExceeded
from resilience.integrations.aws.classifiers import (
    client_error_details,
    is_read,
    read_or_tokened,
    retry_kind,
    service_fault,
    unapplied,
)
from resilience.integrations.aws.protection import protect
from resilience.integrations.aws.protection import session as protected_session
from resilience.integrations.aws.service_breakers import counted_share
from resilience.observability.events import emit

REGION = re.compile(r"[a-z]{2,}(-[a-z]+)+-[0-9]+")  # us-east-1, eu-central-2, us-gov-west-1, cn-north-1
RANKS = {"closed": 0, "disabled": 0, "half_open": 1}  # open and forced_open: 2
LastKnownGood = Callable[..., Any]  # called with the operation's parameters; None: nothing known


def failover_safe(operation_model: Any) -> bool:
    """Safe to send to another region: a read by AWS's naming or a write botocore gives an
    idempotency token (an idempotent HTTP method is not enough: S3's PUT replaces another copy)."""
    return read_or_tokened(operation_model)


def failover_reason(exc: BaseException, operation_model: Any) -> str | None:
    """Why ``exc`` moves the call to the next region (the error's code or class), or None: raise it.
    A write moves only when this region certainly did not apply it (``unapplied``): regions keep their
    own idempotency records, and botocore gives each region's call a token of its own."""
    if isinstance(exc, DeadlineExceeded):
        return None
    if not is_read(operation_model) and not unapplied(exc):
        return None
    if isinstance(exc, CircuitOpenError):
        return "CircuitOpenError"
    if isinstance(exc, ClientError):
        code, status = client_error_details(exc)
        return (code or str(status)) if service_fault(code, status) else None  # other 4xx: the caller's doing
    return type(exc).__name__ if retry_kind(None, None, exc, operation_model) is not None else None


class FailoverClient:
    """Client-like: declared operations fail over between ``clients`` (a region -> protected client
    mapping, primary first); any other attribute is the primary's client's. Safe to share between
    threads: the only state is the region that served last, behind a lock."""

    def __init__(self, clients: dict[str, Any], operations: frozenset[str], last_known_good: dict[str, LastKnownGood]) -> None:
        self.clients: Mapping[str, Any] = MappingProxyType(dict(clients))
        self.regions = tuple(clients)
        self.primary = self.regions[0]
        meta = self.clients[self.primary].meta
        self.service = meta.service_model.service_name
        self.operations = operations
        self._models = {op: meta.service_model.operation_model(meta.method_to_api_mapping[op]) for op in operations}
        self._breakers: dict[str, BreakerHandle] = {r: circuit_breaker(f"aws:{self.service}:{r}") for r in self.regions}
        self._last_known_good = dict(last_known_good)
        self._lock = threading.Lock()
        self._current: str | None = None  # the region that served (or was first in line) last
        self._calls: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        operations = self.__dict__.get("operations")
        if operations is None or name.startswith("_"):
            raise AttributeError(name)
        if name in operations:
            call = self._calls.get(name)
            if call is None:

                def call(**params: Any) -> Any:
                    return self.call(name, **params)

                call.__name__ = call.__qualname__ = name
                call = self._calls.setdefault(name, call)
            return call
        return getattr(self.clients[self.primary], name)

    def __repr__(self) -> str:
        return f"<FailoverClient {self.service} {list(self.regions)} {sorted(self.operations)}>"

    def state(self, region: str) -> str:
        """The breaker state of ``region`` (``closed``, ``half_open``, ``open``, ...), as every process sees it."""
        return self._breakers[region].breaker.state

    def order(self) -> list[str]:
        """The regions in the order the next call tries them (see the module's docstring)."""
        ranks = {region: RANKS.get(self.state(region), 2) for region in self.regions}
        primary_first = ranks[self.primary] <= 1
        return sorted(self.regions, key=lambda r: (not (primary_first and r == self.primary), ranks[r]))

    def call(self, operation: str, **params: Any) -> Any:
        """``operation(**params)``: failed over when declared, else the primary's client's alone."""
        if operation not in self.operations:
            return getattr(self.clients[self.primary], operation)(**params)
        model = self._models[operation]
        order = self.order()
        self._passed_over(operation, order[0])
        error: BaseException | None = None
        reason = ""
        for index, region in enumerate(order):
            if error is not None:
                if remaining() == 0.0:
                    raise DeadlineExceeded(f"deadline passed before failing over from {order[index - 1]}") from error
                self._event("failover", operation, order[index - 1], region, reason)
            left = remaining()
            share = left / (len(order) - index) if left is not None and index < len(order) - 1 else None
            try:
                if share is None:
                    response = getattr(self.clients[region], operation)(**params)
                else:
                    # a region that hangs must leave the next one time to answer; a share long enough
                    # that runs out is that region's failure (counted once, by its breaker)
                    counts = share >= resilience_settings.AWS["failover_min_share"]
                    with deadline(share), counted_share(share) if counts else nullcontext():
                        response = getattr(self.clients[region], operation)(**params)
            except DeadlineExceeded as exc:
                if share is None or not remaining():  # the caller's own deadline: nothing left to fail over with
                    raise
                if not is_read(model):  # the write may be on its way, or applied: never sent to another region
                    raise
                error, reason = exc, "region_timeout"
                continue
            except Exception as exc:
                found = failover_reason(exc, model)
                if found is None:
                    raise
                error, reason = exc, found
                continue
            self._served(operation, region)
            return response
        assert error is not None  # at least one region, and each one either returned or failed
        return self._static(operation, params, error, reason)

    def _passed_over(self, operation: str, first: str) -> None:
        """A call that starts away from the last region that served (its breaker left closed) is a failover."""
        with self._lock:
            current = self._current or self.primary
            if first == current or first == self.primary:
                return  # the same region, or back to the primary: a failback once it serves
            self._current = first
        state = self.state(current)  # closed: a region earlier in the list is closed again
        self._event("failover", operation, current, first, "preferred" if state == "closed" else f"breaker_{state}")

    def _served(self, operation: str, region: str) -> None:
        with self._lock:
            previous, self._current = self._current, region
        if region == self.primary and previous not in (None, self.primary):
            self._event("failback", operation, previous, region, f"breaker_{self.state(region)}")

    def _static(self, operation: str, params: dict[str, Any], error: BaseException, reason: str) -> Any:
        """Every region failed: the configured last-known-good value, or the last region's error."""
        source = self._last_known_good.get(operation)
        if source is None:
            raise error
        fields = {"operation": operation, "regions": ",".join(self.regions), "reason": reason}
        try:
            value, missing = source(**params), "None"
        except Exception as exc:  # noqa: BLE001 - a broken cache must not hide the outage's own error
            value, missing = None, type(exc).__name__
        if value is None:  # raised outside the except: the region's error keeps its own context
            emit(Event("aws", "last_known_good_missing", self.service, {**fields, "error": missing}))
            raise error
        emit(Event("aws", "last_known_good", self.service, fields))
        return value

    def _event(self, kind: str, operation: str, from_region: str, to_region: str, reason: str) -> None:
        fields = {"operation": operation, "from_region": from_region, "to_region": to_region, "reason": reason}
        emit(Event("aws", kind, self.service, fields))


def _regions(regions: Any) -> list[str]:
    if isinstance(regions, str) or not isinstance(regions, Iterable):
        raise ConfigurationError(f"failover_client() regions must be a list of region names, got {regions!r}")
    names = list(regions)
    if not names:
        raise ConfigurationError("failover_client() regions must name at least one region")
    for name in names:
        if not isinstance(name, str) or not REGION.fullmatch(name):
            raise ConfigurationError(f"failover_client() regions: {name!r} is not an AWS region name (such as 'eu-west-1')")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"failover_client() regions must be unique, got {names!r}")
    return names


def _operations(service: str, operations: Any, client: Any) -> frozenset[str]:
    if isinstance(operations, str) or not isinstance(operations, Iterable):
        raise ConfigurationError(f"failover_client({service!r}) operations must be a set of operation names, got {operations!r}")
    names = frozenset(operations)
    if not names:
        raise ConfigurationError(f"failover_client({service!r}) operations must name at least one operation")
    problems = operation_problems(service, names, client.meta.service_model)
    if problems:
        raise ConfigurationError(f"failover_client({service!r}) operations: {problems[0]}")
    return names


def operation_problems(service: str, names: Iterable[str], service_model: Any) -> list[str]:
    """Why each of ``names`` may not fail over (not a method of ``service`` clients, or a write without
    an idempotency token); empty when all may. Also the system check of ``RESILIENCE["AWS"]["FAILOVER"]``."""
    mapping = {xform_name(operation): operation for operation in service_model.operation_names}
    problems = []
    for name in sorted(names, key=str):
        if name not in mapping:
            problems.append(f"{name!r} is not an operation of {service} clients")
        elif not failover_safe(service_model.operation_model(mapping[name])):
            problems.append(
                f"{name!r} is a write, and failover requires an idempotency token (another region must not apply "
                "it a second time); declare reads and idempotent writes only"
            )
    return problems


def settings_problems() -> list[str]:
    """``RESILIENCE["AWS"]["FAILOVER"]`` against botocore's service models: unknown services, operations
    that are not methods, writes without an idempotency token. Loads models only; makes no client."""
    from botocore.exceptions import UnknownServiceError
    from botocore.session import get_session

    loader = get_session()
    problems = []
    for service, entry in resilience_settings.AWS["FAILOVER"].items():
        where = f'RESILIENCE["AWS"]["FAILOVER"][{service!r}]'
        try:
            model = loader.get_service_model(service)
        except UnknownServiceError:
            problems.append(f"{where}: {service!r} is not a boto3 service name")
            continue
        problems += [f'{where}["operations"]: {problem}' for problem in operation_problems(service, entry.operations, model)]
    return problems


def _sources(service: str, last_known_good: Any, operations: frozenset[str]) -> dict[str, LastKnownGood]:
    if last_known_good is None:
        return {}
    if not isinstance(last_known_good, Mapping):
        raise ConfigurationError(f"failover_client({service!r}) last_known_good must map operation names to callables")
    for name, source in last_known_good.items():
        if name not in operations:
            raise ConfigurationError(f"failover_client({service!r}) last_known_good: {name!r} is not one of the operations")
        if not callable(source):
            raise ConfigurationError(f"failover_client({service!r}) last_known_good[{name!r}] must be callable(**params)")
    return dict(last_known_good)


def failover_client(
    service: str,
    regions: Iterable[str] | None = None,
    operations: Iterable[str] | None = None,
    *,
    session: boto3.session.Session | None = None,
    endpoint_urls: Mapping[str, str] | None = None,
    last_known_good: Mapping[str, LastKnownGood] | None = None,
    config: Config | None = None,
) -> FailoverClient:
    """A client of ``service`` whose ``operations`` fail over across ``regions`` (the first is the primary).

    ``session``: a boto3 Session to make the clients from (protected here, as ``protect()`` does);
    default ``session()``. ``endpoint_urls``: region -> endpoint URL (VPC endpoints, LocalStack,
    tests). ``last_known_good``: operation -> ``callable(**params)`` returning the value to serve when
    every region failed (None: nothing known, the error is raised). ``config``: a botocore Config.

    ``regions``, ``operations`` and ``endpoint_urls`` default to ``RESILIENCE["AWS"]["FAILOVER"][service]``."""
    configured = resilience_settings.AWS["FAILOVER"].get(service)
    if configured is not None:
        regions = configured.regions if regions is None else regions
        operations = configured.operations if operations is None else operations
    if regions is None or operations is None:
        raise ConfigurationError(
            f"failover_client({service!r}) needs regions and operations: as arguments, or in "
            f'RESILIENCE["AWS"]["FAILOVER"][{service!r}]'
        )
    names = _regions(regions)
    if endpoint_urls is None and configured is not None:  # the configured URLs of the regions in use
        endpoint_urls = {r: url for r, url in configured.endpoint_urls.items() if r in names}
    endpoints = dict(endpoint_urls or {})
    for region, url in endpoints.items():
        if region not in names or not isinstance(url, str):
            raise ConfigurationError(
                f"failover_client({service!r}) endpoint_urls: {region!r} must be one of the regions, with a URL"
            )
    made = protect(session) if session is not None else protected_session()
    clients = {r: made.client(service, region_name=r, endpoint_url=endpoints.get(r), config=config) for r in names}
    declared = _operations(service, operations, clients[names[0]])
    return FailoverClient(clients, declared, _sources(service, last_known_good, declared))
