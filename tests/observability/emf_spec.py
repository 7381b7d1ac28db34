"""The CloudWatch Embedded Metric Format rules, checked line by line, written from the specification
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
and the limits CloudWatch and its EMF client libraries enforce, independently of the sink's own code.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
    "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
    "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip
NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]{1,255}")
MAX_EVENT_BYTES = 256 * 1024  # a CloudWatch Logs event
MAX_METRICS = 100  # metric definitions per document
MAX_DIMENSIONS = 30  # names per DimensionSet
MAX_VALUES = 100  # values in an array metric
DAY_MS = 86_400_000


def _text(value: Any, low: int, high: int) -> bool:
    """A string of ``low``-``high`` printable ASCII characters, not all spaces."""
    return (
        isinstance(value, str) and low <= len(value) <= high and value.isascii() and value.isprintable() and bool(value.strip())
    )


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= 2.0**360  # CloudWatch refuses larger magnitudes
    )


def problems(line: str, now_ms: int | None = None) -> list[str]:
    """Every rule of the EMF specification that ``line`` breaks (empty: a valid EMF log event)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    found: list[str] = []
    if len(line.encode()) > MAX_EVENT_BYTES:
        found.append("larger than a CloudWatch Logs event")
    if line != line.strip():
        found.append("data before or after the JSON object")
    try:
        root = json.loads(line)
    except ValueError as exc:
        return [*found, f"not JSON: {exc}"]
    if not isinstance(root, dict):
        return [*found, "the root is not an object"]
    aws = root.get("_aws")
    if not isinstance(aws, dict):
        return [*found, "no _aws metadata object"]
    if set(aws) - {"Timestamp", "CloudWatchMetrics", "LogGroupName"}:
        found.append(f"unknown _aws members {sorted(set(aws) - {'Timestamp', 'CloudWatchMetrics', 'LogGroupName'})}")
    stamp = aws.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        found.append(f"Timestamp is not an integer number of milliseconds: {stamp!r}")
    elif not now_ms - 14 * DAY_MS <= stamp <= now_ms + 2 * 3_600_000:
        found.append(f"Timestamp {stamp} is not milliseconds within CloudWatch's window (14 days back, 2 hours ahead)")
    directives = aws.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "CloudWatchMetrics is not a non-empty array"]
    metric_names: set[str] = set()
    dimension_names: set[str] = set()
    total = 0
    for d, directive in enumerate(directives):
        where = f"CloudWatchMetrics[{d}]"
        if not isinstance(directive, dict) or set(directive) != {"Namespace", "Dimensions", "Metrics"}:
            found.append(f"{where} must have exactly Namespace, Dimensions and Metrics")
            continue
        if not isinstance(directive["Namespace"], str) or not NAMESPACE.fullmatch(directive["Namespace"]):
            found.append(f"{where}.Namespace {directive['Namespace']!r} is not a valid namespace")
        elif directive["Namespace"].startswith("AWS/"):
            found.append(f"{where}.Namespace uses the reserved AWS/ prefix")
        sets = directive["Dimensions"]
        if not isinstance(sets, list):
            found.append(f"{where}.Dimensions is not an array of DimensionSets")
            sets = []
        for s, names in enumerate(sets):
            if not isinstance(names, list) or len(names) > MAX_DIMENSIONS or len(set(map(str, names))) != len(names):
                found.append(f"{where}.Dimensions[{s}] is not an array of at most {MAX_DIMENSIONS} distinct names")
                continue
            for name in names:
                if not _text(name, 1, 250) or name.startswith(":"):
                    found.append(f"{where}: dimension name {name!r} is not 1-250 printable ASCII characters")
                elif not _text(root.get(name), 1, 1024):
                    found.append(f"{where}: dimension {name!r} has no string value of 1-1024 printable ASCII characters")
                dimension_names.add(str(name))
        metrics = directive["Metrics"]
        if not isinstance(metrics, list):
            found.append(f"{where}.Metrics is not an array")
            continue
        total += len(metrics)
        for definition in metrics:
            if not isinstance(definition, dict) or not set(definition) <= {"Name", "Unit", "StorageResolution"}:
                found.append(f"{where}: metric definition {definition!r} has unknown members")
                continue
            name = definition.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 1024 or not name.strip():
                found.append(f"{where}: metric name {name!r} is not 1-1024 characters")
                continue
            if name in metric_names:
                found.append(f"{where}: metric {name!r} defined twice")
            metric_names.add(name)
            if "Unit" in definition and definition["Unit"] not in UNITS:
                found.append(f"{where}: metric {name!r} has unit {definition['Unit']!r}")
            if "StorageResolution" in definition and definition["StorageResolution"] not in (1, 60):
                found.append(f"{where}: metric {name!r} has StorageResolution {definition['StorageResolution']!r}")
            value = root.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_VALUES or not all(_number(v) for v in values):
                found.append(f"{where}: metric {name!r} has no number (or array of at most {MAX_VALUES}) at the root: {value!r}")
    if total > MAX_METRICS:
        found.append(f"{total} metrics in one document (at most {MAX_METRICS})")
    if metric_names & dimension_names:
        found.append(f"names both a metric and a dimension: {sorted(metric_names & dimension_names)}")
    return found


def documents(text: str) -> list[dict[str, Any]]:
    """Each line of ``text`` checked against the rules (AssertionError naming the first broken one), parsed."""
    parsed = []
    for line in text.splitlines():
        broken = problems(line)
        assert not broken, f"{broken} in {line[:300]}"
        parsed.append(json.loads(line))
    return parsed


def metric_values(document: dict[str, Any]) -> dict[str, Any]:
    """Metric name -> value of one parsed document."""
    return {m["Name"]: document[m["Name"]] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def dimensions(document: dict[str, Any]) -> dict[str, str]:
    """Dimension name -> value of one parsed document (its first DimensionSet)."""
    return {name: document[name] for name in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]}
