"""Bring an account's alarms to the wanted definitions (``alarms.wanted``): compare what DescribeAlarms
shows with them, show the difference as a unified diff, put only what differs.

Only the parameters this library sets are compared, so state, timestamps and ARNs never show as a
change, and a second run after ``apply`` finds nothing to do. Alarms under the prefix that are no
longer wanted (a breaker removed from settings) are kept unless deletion is asked for.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

Params = dict[str, Any]
ALARM_KEYS = ("AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions")
METRIC_KEYS = (
    *ALARM_KEYS, "Namespace", "MetricName", "Dimensions", "Statistic", "Period", "EvaluationPeriods",
    "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
)  # fmt: skip
COMPOSITE_KEYS = (*ALARM_KEYS, "AlarmRule")


def comparable(alarm: Params) -> Params:
    """The parameters this library manages, in one form whichever side they come from."""
    keys = COMPOSITE_KEYS if "AlarmRule" in alarm else METRIC_KEYS
    found = {key: alarm.get(key) for key in keys}
    if "AlarmRule" not in alarm:
        found["Dimensions"] = sorted(({"Name": d["Name"], "Value": d["Value"]} for d in alarm.get("Dimensions") or []),
                                     key=lambda d: (d["Name"], d["Value"]))  # fmt: skip
        found["Threshold"] = float(found["Threshold"]) if found["Threshold"] is not None else None
    for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
        found[key] = list(found[key] or [])
    return found


def current(client: Any, prefix: str) -> dict[str, Params]:
    """The account's alarms whose name starts with ``<prefix>-``, metric and composite, by name."""
    found: dict[str, Params] = {}
    pages = client.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{prefix}-", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    for page in pages:
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            found[alarm["AlarmName"]] = comparable(alarm)
    return found


@dataclass
class Changes:
    """What ``apply`` would do: alarms to create, to update, to delete (when asked), and how many match."""

    create: list[Params] = field(default_factory=list)
    update: list[Params] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # under the prefix, no longer wanted
    unchanged: int = 0

    @property
    def puts(self) -> list[Params]:
        """Alarms to put, metric alarms first: a composite alarm's rule names them."""
        both = [*self.create, *self.update]
        return sorted(both, key=lambda a: "AlarmRule" in a)


def compare(existing: dict[str, Params], wanted: list[Params]) -> Changes:
    changes = Changes()
    for alarm in wanted:
        have = existing.get(alarm["AlarmName"])
        if have is None:
            changes.create.append(alarm)
        elif have != comparable(alarm):
            changes.update.append(alarm)
        else:
            changes.unchanged += 1
    names = {alarm["AlarmName"] for alarm in wanted}
    stale = [name for name in existing if name not in names]
    changes.stale = sorted(stale, key=lambda name: ("AlarmRule" not in existing[name], name))  # composites first
    return changes


def _lines(alarm: Params | None) -> list[str]:
    if alarm is None:
        return []
    return [line + "\n" for line in json.dumps(comparable(alarm), indent=2, sort_keys=True, ensure_ascii=True).splitlines()]


def diff(existing: dict[str, Params], changes: Changes, delete_stale: bool = False) -> str:
    """A unified diff per alarm that changes: ``/dev/null`` for one created (or deleted)."""
    parts: list[str] = []
    for alarm in [*changes.create, *changes.update]:
        name = alarm["AlarmName"]
        before = existing.get(name)
        parts += difflib.unified_diff(
            _lines(before), _lines(alarm), f"a/{name}" if before else "/dev/null", f"b/{name}", n=2
        )  # fmt: skip
    for name in changes.stale if delete_stale else []:
        parts += difflib.unified_diff(_lines(existing[name]), [], f"a/{name}", "/dev/null", n=2)
    return "".join(parts)


def apply(client: Any, changes: Changes, delete_stale: bool = False, done: list[str] | None = None) -> None:
    """Put what differs (metric alarms, then the composite), then delete stale alarms when asked
    (composite ones first: CloudWatch keeps an alarm that a composite rule still names). ``done``
    collects the names put so far, so a call that fails half-way can say what it changed."""
    for alarm in changes.puts:
        if "AlarmRule" in alarm:
            client.put_composite_alarm(**alarm)
        else:
            client.put_metric_alarm(**alarm)
        if done is not None:
            done.append(alarm["AlarmName"])
    if delete_stale and changes.stale:
        for start in range(0, len(changes.stale), 100):  # DeleteAlarms takes 100 names at most
            client.delete_alarms(AlarmNames=changes.stale[start : start + 100])
