"""One interval's values as ``PutMetricData`` requests: the ``MetricData`` entries, split to CloudWatch's limits.

A counter series with several increments in the interval is a statistic set (``StatisticValues``:
sample count, sum, minimum, maximum); with one, a plain ``Value``; a gauge is its last ``Value``.
A request holds at most 1,000 entries and 1 MB of body: the size is measured by serializing the
batch with botocore's own serializer for the protocol its clients use, before any compression
(botocore gzips the body afterwards, so the sent request is smaller still).
"""

from __future__ import annotations

import datetime
import functools
from typing import Any
from urllib.parse import urlencode

from botocore.serialize import create_serializer
from botocore.session import Session as BotocoreSession

from resilience.observability.interval_sink import Series, Stat, Tags, number, writable

MAX_ENTRIES = 1000  # MetricData entries per PutMetricData call
MAX_BYTES = 1_000_000  # bytes of one call's body (CloudWatch: 1 MB per request)
MAX_METRIC_NAME = 255  # characters of a PutMetricData MetricName
Entry = dict[str, Any]


def entries(
    counts: dict[Series, Stat],
    levels: dict[Series, float],
    dimensions_of: Any,
    timestamp: datetime.datetime,
    storage_resolution: int,
) -> tuple[list[Entry], int]:
    """The ``MetricData`` entries of one interval, and how many series were refused.

    ``dimensions_of(tags)`` gives a series' dimensions, or None when CloudWatch cannot take them."""
    found: list[Entry] = []
    refused = 0
    for (metric, tags), stat in counts.items():
        dimensions = dimensions_of(tags)
        if dimensions is None or not all(writable(metric, v, dimensions, MAX_METRIC_NAME) for v in stat[1:]):
            refused += 1
            continue
        entry = _entry(metric, dimensions, timestamp, storage_resolution, unit="Count")
        if stat[0] == 1:
            entry["Value"] = number(stat[1])
        else:
            sample_count, total, low, high = stat
            entry["StatisticValues"] = {
                "SampleCount": number(sample_count), "Sum": number(total), "Minimum": number(low), "Maximum": number(high),
            }  # fmt: skip
        found.append(entry)
    for (metric, tags), value in levels.items():
        dimensions = dimensions_of(tags)
        if dimensions is None or not writable(metric, value, dimensions, MAX_METRIC_NAME):
            refused += 1
            continue
        found.append({**_entry(metric, dimensions, timestamp, storage_resolution, unit=None), "Value": number(value)})
    return found, refused


def _entry(metric: str, dimensions: Tags, timestamp: datetime.datetime, storage_resolution: int, unit: str | None) -> Entry:
    entry: Entry = {
        "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
        "Timestamp": timestamp,
        "StorageResolution": storage_resolution,
    }
    if unit is not None:
        entry["Unit"] = unit
    return entry


def batches(namespace: str, found: list[Entry]) -> list[list[Entry]]:
    """``found`` split into calls of at most ``MAX_ENTRIES`` entries and ``MAX_BYTES`` of body.

    A batch over the size is halved until it fits (entries are at most ~40 kB: 30 dimensions of
    1024 characters), so every batch but a lone giant one is at least half full."""
    out: list[list[Entry]] = []
    pending = [found[start : start + MAX_ENTRIES] for start in range(0, len(found), MAX_ENTRIES)]
    pending.reverse()
    while pending:
        batch = pending.pop()
        if len(batch) == 1 or body_size(namespace, batch) <= MAX_BYTES:
            out.append(batch)
        else:
            half = len(batch) // 2
            pending += [batch[half:], batch[:half]]
    return out


def body_size(namespace: str, batch: list[Entry]) -> int:
    """Bytes of the ``PutMetricData`` body botocore would send for ``batch``, uncompressed."""
    serializer, operation = _put_metric_data()
    body = serializer.serialize_to_request({"Namespace": namespace, "MetricData": batch}, operation)["body"]
    if isinstance(body, dict):  # the query protocol: botocore url-encodes the parameters when it sends them
        body = urlencode(body, doseq=True)
    return len(body.encode("utf-8") if isinstance(body, str) else body)


@functools.cache
def _put_metric_data() -> tuple[Any, Any]:
    """botocore's serializer for CloudWatch's protocol (the one its clients resolve) and the operation model."""
    service = BotocoreSession().get_service_model("cloudwatch")
    return create_serializer(service.resolved_protocol, include_validation=False), service.operation_model("PutMetricData")
