"""CloudWatch alarms on the metrics the sinks publish: pure definitions, as PutMetricAlarm and
PutCompositeAlarm parameters (``manage.py resilience_alarms`` puts them).

An alarm watches one (namespace, metric, dimension set); CloudWatch matches the set exactly, so
every alarm here is built from the same parts the EMF sink writes for the event it watches: the
metric ``resilience.<area>.<kind>``, the static dimensions of ``RESILIENCE["METRICS"]["EMF"]``, then
the event's tags (``name``, and ``new_state`` for a transition), each value as ``dimension_value``
writes it. An event whose ``name`` is not one of a known, bounded set cannot be alarmed on this
way: rate-limit store trouble (``ratelimit store_unavailable`` is named after the combination of
policies of a decision) is watched through the rate-limit store's breaker, ``redis:ratelimit``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from resilience.conf import resilience_settings
from resilience.observability.emf_settings import EMFConfig, dimension_value

Params = dict[str, Any]
MAX_COMPOSITE_ALARMS = 100  # alarms one composite rule may name (CloudWatch's limit)
MAX_RULE = 10_240  # characters of an AlarmRule
PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SLUG = re.compile(r"[A-Za-z0-9._:/@+=-]{1,150}")
RATELIMIT_BREAKER = "redis:ratelimit"  # resilience.ratelimit.limiter.REDIS_BREAKER (not imported: pure module)
STORES = ("breaker", "retry_budget", "stale")  # the Redis stores that report ``storage store_unavailable``


@dataclass(frozen=True)
class Evaluation:
    """How much evidence raises an alarm: ``datapoints`` of the last ``periods`` periods of ``period`` seconds."""

    period: int = 60
    periods: int = 1
    datapoints: int = 1
    missing: str = "notBreaching"  # no data: nothing happened


# Defaults, documented in README "Alerting". Counters are Sum >= 1 per period.
OPENS = Evaluation()  # a breaker opened in the last minute: one is enough
GIVE_UPS = Evaluation(60, 5, 3)  # retries given up in 3 of the last 5 minutes: a dependency failing, not a blip
BUDGET = Evaluation()  # a retry budget refused a retry: the dependency is failing for many callers
STORE = Evaluation()  # a Redis store stopped answering (reported once per outage)
PROVIDER = Evaluation(60, 3, 2)  # Entra metadata or keys unreachable in 2 of 3 minutes (cached keys still serve)
REFUSED = Evaluation()  # Entra sign-ins refused: no usable keys at all
FAILOVER = Evaluation()  # an AWS call served by another region, or every region failed


@dataclass(frozen=True)
class AlarmPlan:
    """What to alarm on: read from settings and the breaker registry by the command, passed in here."""

    namespace: str = "Resilience"
    static: tuple[tuple[str, str], ...] = ()  # RESILIENCE["METRICS"]["EMF"]["dimensions"]
    breakers: tuple[str, ...] = ()
    critical: tuple[str, ...] | None = None  # breakers in the composite alarm; None: every breaker
    retry_policies: tuple[str, ...] = ()
    budget_policies: tuple[str, ...] = ()  # policies with a retry budget
    stores: tuple[str, ...] = ()  # Redis stores (REDIS set): STORES
    entra: bool = False
    aws_services: tuple[str, ...] = ()
    credentials: tuple[str, float, float] | None = None  # (role ARN, refresh_margin, schedule)


def slug(name: str) -> str:
    """``name`` as a part of an alarm name: itself when plain, else its plain characters and a hash,
    so two names never share an alarm and no name can break a composite rule (``"`` or ``)``)."""
    if _SLUG.fullmatch(name):
        return name
    plain = re.sub(r"[^A-Za-z0-9._:/@+=-]", "_", name)[:100]
    return f"{plain}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def dimensions(plan: AlarmPlan, name: str, **tags: str) -> list[dict[str, str]]:
    """The dimensions the EMF sink writes for an event named ``name`` with ``tags`` (``new_state``)."""
    pairs = [*plan.static, ("name", dimension_value(name[:200])), *((k, dimension_value(v)) for k, v in tags.items())]
    return [{"Name": key, "Value": value} for key, value in pairs]


def _metric_alarm(
    plan: AlarmPlan, alarm: str, what: str, metric: str, name: str, ev: Evaluation, actions: Sequence[str], **tags: str
) -> Params:
    return {
        "AlarmName": alarm,
        "AlarmDescription": f"{what} (django-resilience; managed by manage.py resilience_alarms)",
        "ActionsEnabled": True,
        "AlarmActions": list(actions),
        "OKActions": list(actions),
        "InsufficientDataActions": [],
        "Namespace": plan.namespace,
        "MetricName": metric,
        "Dimensions": dimensions(plan, name, **tags),
        "Statistic": "Sum",
        "Period": ev.period,
        "EvaluationPeriods": ev.periods,
        "DatapointsToAlarm": ev.datapoints,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": ev.missing,
    }


def breaker_alarm_name(prefix: str, breaker: str) -> str:
    return f"{prefix}-breaker-open-{slug(breaker)}"


def metric_alarms(plan: AlarmPlan, prefix: str = "resilience", actions: Sequence[str] = ()) -> list[Params]:
    """Every PutMetricAlarm parameter dict of ``plan``, in a stable order."""
    found = [
        _metric_alarm(plan, breaker_alarm_name(prefix, b), f"Breaker {b!r} opened", "resilience.breaker.transition", b, OPENS,
                      actions, new_state="open")
        for b in plan.breakers
    ]  # fmt: skip
    rows: list[tuple[str, str, str, str, Evaluation]] = []  # (name after the prefix, what, metric, event name, evaluation)
    rows += [(f"retry-give-up-{slug(n)}", f"Retry policy {n!r} gave up", "resilience.retry.give_up", n, GIVE_UPS)
             for n in plan.retry_policies]  # fmt: skip
    rows += [(f"retry-budget-refused-{slug(n)}", f"Retry budget of {n!r} refused retries", "resilience.retry.budget_refused",
              n, BUDGET) for n in plan.budget_policies]  # fmt: skip
    rows += [(f"store-unavailable-{n}", f"Redis store {n!r} unavailable", "resilience.storage.store_unavailable", n, STORE)
             for n in plan.stores]  # fmt: skip
    if plan.entra:
        rows.append(("entra-provider-unavailable", "Entra ID metadata or keys unreachable",
                     "resilience.auth.provider_unavailable", "entra", PROVIDER))  # fmt: skip
        rows.append(
            ("entra-unavailable", "Entra ID sign-ins refused: no usable keys", "resilience.auth.unavailable", "entra", REFUSED)
        )
    for n in plan.aws_services:
        rows.append(
            (f"aws-failover-{slug(n)}", f"AWS {n} calls failed over to another region", "resilience.aws.failover", n, FAILOVER)
        )
        rows.append((f"aws-last-known-good-{slug(n)}", f"AWS {n}: every region failed, a last-known-good value served",
                     "resilience.aws.last_known_good", n, FAILOVER))  # fmt: skip
    found += [_metric_alarm(plan, f"{prefix}-{tail}", what, metric, name, ev, actions) for tail, what, metric, name, ev in rows]
    if plan.credentials is not None:
        found.append(credentials_alarm(plan, prefix, actions))
    return found


def credentials_alarm(plan: AlarmPlan, prefix: str, actions: Sequence[str]) -> Params:
    """Minimum of ``credentials_expires_in`` below ``refresh_margin``: refreshes are failing. Missing
    data breaches: every run of the refresh task reports the gauge, so silence for two periods (each
    ``schedule`` rounded up to a minute) means the task is not running, and the credentials will expire."""
    assert plan.credentials is not None
    role, margin, schedule = plan.credentials
    period = 60 * max(1, math.ceil(schedule / 60))
    ev = Evaluation(period, 2, 2, "breaching")
    what = f"AWS credentials of {role} below the refresh margin ({margin:g} s), or not reported"
    params = _metric_alarm(
        plan, f"{prefix}-aws-credentials-expiring", what, "resilience.aws.credentials_expires_in", role, ev, actions
    )
    return {**params, "Statistic": "Minimum", "Threshold": float(margin), "ComparisonOperator": "LessThanThreshold"}


def composite_alarm(plan: AlarmPlan, prefix: str = "resilience", actions: Sequence[str] = ()) -> Params | None:
    """``<prefix>-any-critical-dependency-down``: ALARM(...) OR ALARM(...) over the open alarms of the
    critical breakers (None when there are none). ValueError past CloudWatch's limits of a rule."""
    critical = plan.breakers if plan.critical is None else plan.critical
    names = [breaker_alarm_name(prefix, b) for b in critical]
    if not names:
        return None
    rule = " OR ".join(f'ALARM("{name}")' for name in names)
    if len(names) > MAX_COMPOSITE_ALARMS or len(rule) > MAX_RULE:
        raise ValueError(
            f"{len(names)} critical breakers make a composite rule CloudWatch refuses (at most {MAX_COMPOSITE_ALARMS} "
            f"alarms and {MAX_RULE} characters): name the critical ones"
        )
    return {
        "AlarmName": f"{prefix}-any-critical-dependency-down",
        "AlarmDescription": "A critical dependency is down: one of its breakers is open (django-resilience; managed by "
        "manage.py resilience_alarms)",
        "ActionsEnabled": True,
        "AlarmActions": list(actions),
        "OKActions": list(actions),
        "InsufficientDataActions": [],
        "AlarmRule": rule,
    }


def wanted(plan: AlarmPlan, prefix: str = "resilience", actions: Sequence[str] = ()) -> list[Params]:
    """Every alarm of ``plan``: the metric alarms, then the composite (it names them, so it goes last)."""
    composite = composite_alarm(plan, prefix, actions)
    return [*metric_alarms(plan, prefix, actions), *([composite] if composite else [])]


def aws_services(breakers: Iterable[str]) -> tuple[str, ...]:
    """The AWS services in use, from breaker names ``aws:<service>:<region>``."""
    return tuple(sorted({b.split(":")[1] for b in breakers if b.count(":") == 2 and b.startswith("aws:") and b.split(":")[1]}))


def published_scope() -> tuple[str, tuple[tuple[str, str], ...]]:
    """The namespace and static dimensions the CloudWatch sink in ``SINKS`` publishes under (the EMF
    sink's ``EMF`` settings, the PutMetricData sink's ``CLOUDWATCH``): alarms match a metric's
    dimensions exactly, so they must watch those. Neither in ``SINKS`` (the lines are shipped some
    other way): ``EMF``'s. ValueError when both are there and differ: alarms can watch only one."""
    metrics = resilience_settings.METRICS
    used = dict.fromkeys(getattr(sink, "options_key", None) for sink in metrics.sinks)
    scopes = {(metrics.options[key].namespace, metrics.options[key].dimensions) for key in ("EMF", "CLOUDWATCH") if key in used}
    if len(scopes) > 1:
        raise ValueError(
            'the EMF and PutMetricData sinks publish under different namespaces or dimensions (RESILIENCE["METRICS"] '
            '"EMF" and "CLOUDWATCH"): alarms can watch one; give both the same'
        )
    if scopes:
        return scopes.pop()
    emf: EMFConfig = metrics.options["EMF"]
    return emf.namespace, emf.dimensions


def plan_from_settings(breakers: Iterable[str], critical: Sequence[str] | None = None) -> AlarmPlan:
    """The plan for ``breakers`` (configured and known to the registry) under the current settings.
    ValueError when a ``critical`` name is not one of them."""
    names = set(breakers) - {"default"}
    redis = resilience_settings.REDIS is not None
    if redis:
        names.add(RATELIMIT_BREAKER)  # rate-limit store outages: its breaker opens (module docstring)
    if critical is not None:
        unknown = sorted(set(critical) - names)
        if unknown:
            raise ValueError(f"--critical names no known breaker: {', '.join(map(repr, unknown))}")
    namespace, dimensions = published_scope()
    retry = resilience_settings.RETRY
    role = resilience_settings.AWS["CREDENTIALS"]
    return AlarmPlan(
        namespace=namespace,
        static=dimensions,
        breakers=tuple(sorted(names)),
        critical=None if critical is None else tuple(dict.fromkeys(critical)),
        retry_policies=tuple(name for name in retry if name != "default"),
        budget_policies=tuple(name for name, values in retry.items() if name != "default" and values["budget"] is not None),
        stores=STORES if redis else (),
        entra="entra" in names or bool(resilience_settings.values["ENTRA"]),
        aws_services=aws_services(names),
        credentials=None if role is None else (role.role_arn, role.refresh_margin, role.schedule),
    )
