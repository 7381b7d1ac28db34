"""CloudWatchSink: PutMetricData against moto in server mode (real HTTP), cut at the fault proxy."""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
from django.core.checks import run_checks

from resilience import breakers, circuit_breaker
from resilience.core.event import Event
from resilience.observability.cloudwatch import CloudWatchSink
from resilience.observability.cloudwatch_batches import MAX_BYTES, MAX_ENTRIES
from resilience.observability.cloudwatch_settings import parse_cloudwatch
from resilience.observability.events import emit, sinks
from resilience.observability.metrics import InMemorySink
from tests.faults.proxy import FaultProxy
from tests.urls_sinks import serve

from .cloudwatch_recorder import CloudWatchRecorder

CLOUDWATCH = "resilience.observability.cloudwatch.CloudWatchSink"
MEMORY = "resilience.observability.metrics.InMemorySink"
PATH = 'RESILIENCE["METRICS"]["CLOUDWATCH"]'
REGION = "eu-west-1"
BREAKER = f"aws:cloudwatch:{REGION}"
TRANSITION = "resilience.breaker.transition"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, settings):
    """Test credentials for boto3's own resolution; breakers that decide after 3 calls; fast retries."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    configure(settings, sink_paths=(MEMORY,))


@pytest.fixture
def recorder(moto_url) -> Iterator[CloudWatchRecorder]:
    found = CloudWatchRecorder(moto_url)
    yield found
    found.close()


@pytest.fixture
def outage(moto_url) -> Iterator[FaultProxy]:
    """A TCP proxy in front of moto: ``.refuse()`` or ``.blackhole()`` cuts CloudWatch off."""
    host, port = moto_url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    yield proxy
    proxy.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own: moto's store lives as long as the module."""
    return f"Test{uuid.uuid4().hex[:12]}"


def configure(settings, cloudwatch=None, sink_paths=(CLOUDWATCH, MEMORY), **resilience):
    settings.RESILIENCE = {
        "HISTORY": False,
        "METRICS": {"SINKS": list(sink_paths), "CLOUDWATCH": {"region": REGION, **(cloudwatch or {})}},
        "RETRY": {"aws": {"attempts": 2, "base": 0.001, "cap": 0.01, "budget": None}},
        "BREAKERS": {"default": {"minimum_calls": 3, "failure_rate": 50, "window_type": "count", "window": 10, "open_for": 30}},
        **resilience,
    }


def direct(endpoint: str, **options) -> CloudWatchSink:
    """A sink on its own, without threads: the test flushes (onto the queue) and sends."""
    return CloudWatchSink(parse_cloudwatch({"region": REGION, "endpoint_url": endpoint, **options}, PATH), thread=False)


def cloudwatch_sink() -> CloudWatchSink:
    """The sink the event path built from the settings."""
    return next(s for s in sinks() if isinstance(s, CloudWatchSink))


def reader(moto_url: str):
    return boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_url)


def dims(**values: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in values.items()]


def statistics(moto_url: str, namespace: str, metric: str, dimensions: list[dict[str, str]]) -> list[dict]:
    now = datetime.datetime.now(datetime.UTC)
    return reader(moto_url).get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=dimensions, Period=60,
        StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=10),
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
    )["Datapoints"]  # fmt: skip


def metric_sum(moto_url: str, namespace: str, metric: str, dimensions: list[dict[str, str]]) -> list[float]:
    now = datetime.datetime.now(datetime.UTC)
    stat = {"Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions}, "Period": 60, "Stat": "Sum"}
    found = reader(moto_url).get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": stat}],
        StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=10),
    )  # fmt: skip
    return found["MetricDataResults"][0]["Values"]


def listed(moto_url: str, namespace: str) -> list[dict]:
    pages = reader(moto_url).get_paginator("list_metrics").paginate(Namespace=namespace)
    return [metric for page in pages for metric in page["Metrics"]]


def _fail():
    raise ConnectionError("down")


def trip(name: str) -> None:
    breaker = circuit_breaker(name)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)


# What lands in CloudWatch.
def test_counters_land_as_statistic_sets_and_gauges_as_values(recorder, moto_url, namespace):
    sink = direct(recorder.url, namespace=namespace, dimensions={"Service": "orders"})
    for value in (1, 1, 4, 1):
        sink.increment(TRANSITION, value, {"name": "payments", "new_state": "open"})
    sink.increment(TRANSITION, 1, {"name": "search", "new_state": "open"})
    sink.gauge("resilience.aws.credentials_expires_in", 900, {"name": "role"})
    sink.flush()
    sink.send_pending()
    [put] = recorder.puts()
    by_name = {e["Dimensions"][1]["Value"]: e for e in put.params["MetricData"]}
    assert by_name["payments"]["StatisticValues"] == {"SampleCount": 4, "Sum": 7, "Minimum": 1, "Maximum": 4}
    assert by_name["search"]["Value"] == 1 and "StatisticValues" not in by_name["search"]  # one increment: a plain value
    assert by_name["role"]["Value"] == 900 and "Unit" not in by_name["role"]  # a gauge: its level, no unit
    assert {e["StorageResolution"] for e in put.params["MetricData"]} == {60}
    [point] = statistics(moto_url, namespace, TRANSITION, dims(Service="orders", name="payments", new_state="open"))
    assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"], point["Unit"]) == (4, 7, 1, 4, "Count")
    assert metric_sum(moto_url, namespace, TRANSITION, dims(Service="orders", name="search", new_state="open")) == [1]


def test_counting_sends_nothing_until_the_interval_ends(recorder, namespace):
    sink = direct(recorder.url, namespace=namespace)
    for i in range(10_000):
        sink.increment("app.calls", 1.0, {"name": f"n{i % 50}"})
    assert recorder.calls == []
    sink.flush()
    assert recorder.calls == []  # batches wait on the queue for the sender
    sink.send_pending()
    [put] = recorder.puts()
    assert len(put.params["MetricData"]) == 50
    assert {e["StatisticValues"]["SampleCount"] for e in put.params["MetricData"]} == {200}


def test_a_breaker_transition_reaches_cloudwatch_through_the_event_path(settings, moto_url, namespace):
    configure(settings, {"namespace": namespace, "endpoint_url": moto_url, "dimensions": {"Service": "orders"}})
    trip("payments-events")
    cloudwatch_sink().close()  # the last interval, sent by the sender thread before it stops
    assert metric_sum(moto_url, namespace, TRANSITION, dims(Service="orders", name="payments-events", new_state="open")) == [1]


def test_the_alarms_watch_exactly_the_series_the_putmetricdata_sink_publishes(settings, moto_url, namespace):
    """Found by a README audit: the alarms watched the EMF sink's namespace and dimensions, so with this
    sink and README's own CLOUDWATCH example they could never fire."""
    from resilience.observability.alarms import plan_from_settings, wanted

    configure(settings, {"namespace": namespace, "endpoint_url": moto_url, "dimensions": {"Service": "orders", "Stage": "prod"}})
    trip("payments-alarm")
    cloudwatch_sink().close()
    mine = {"Name": "name", "Value": "payments-alarm"}
    [published] = [m for m in listed(moto_url, namespace) if mine in m["Dimensions"]]
    alarm = next(a for a in wanted(plan_from_settings(["payments-alarm"])) if mine in a.get("Dimensions", []))
    assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, TRANSITION)
    assert (published["Namespace"], published["MetricName"]) == (namespace, TRANSITION)
    assert sorted(alarm["Dimensions"], key=str) == sorted(published["Dimensions"], key=str)  # CloudWatch matches them exactly


# Limits of one call.
def test_2500_series_are_three_calls_of_at_most_1000_entries_each_gzipped(recorder, moto_url, namespace):
    sink = direct(recorder.url, namespace=namespace)
    for i in range(2500):
        sink.increment("app.calls", 1.0, {"name": f"n{i}"})
    sink.flush()
    sink.send_pending()
    puts = recorder.puts()
    assert [len(p.params["MetricData"]) for p in puts] == [MAX_ENTRIES, MAX_ENTRIES, 500]
    assert all(p.encoding == "gzip" and p.sent_bytes < p.body_bytes <= MAX_BYTES for p in puts)
    assert len(listed(moto_url, namespace)) == 2500


def test_calls_are_split_to_stay_within_one_megabyte(recorder, namespace):
    static = {f"D{i}": f"{i}" * 1024 for i in range(1, 10)}  # 9 values of 1024 characters on every entry
    sink = direct(recorder.url, namespace=namespace, dimensions=static)
    for i in range(200):
        sink.increment("app.calls", 1.0, {"name": f"n{i}"})
    sink.flush()
    sink.send_pending()
    puts = recorder.puts()
    assert sum(len(p.params["MetricData"]) for p in puts) == 200
    assert len(puts) >= 2 and all(MAX_BYTES // 2 < p.body_bytes <= MAX_BYTES for p in puts[:-1])
    assert all(p.encoding == "gzip" and p.sent_bytes < p.body_bytes for p in puts)


def test_high_resolution_sends_every_second_with_storage_resolution_1(recorder, namespace):
    sink = direct(recorder.url, namespace=namespace, high_resolution=True)
    assert sink.config.interval == 1.0
    sink.increment(TRANSITION, 1, {"name": "payments", "new_state": "open"})
    sink.flush()
    sink.send_pending()
    [put] = recorder.puts()
    assert [e["StorageResolution"] for e in put.params["MetricData"]] == [1]


# Failure never reaches a call, and costs a bounded number of log lines.
def test_a_full_queue_drops_the_batch_and_counts_it(recorder, events, namespace):
    sink = direct(recorder.url, namespace=namespace, queue_size=1)
    for interval in range(3):
        sink.increment("app.calls", 1.0, {"name": f"n{interval}"})
        sink.increment("app.calls", 1.0, {"name": f"m{interval}"})
        sink.flush()  # no sender: the queue holds one batch, later ones are dropped
    dropped = [e for e in events if e.kind == "batch_dropped"]
    assert [(e.name, e.fields) for e in dropped] == [("cloudwatch", {"count": 2, "reason": "queue_full"})] * 2
    assert InMemorySink.last.value("resilience.metrics.batch_dropped", name="cloudwatch") == 4  # the data points lost
    sink.send_pending()
    assert [len(p.params["MetricData"]) for p in recorder.puts()] == [2]  # the first interval, the one that had room


def test_a_refused_cloudwatch_opens_its_breaker_and_later_batches_are_dropped_unsent(outage, moto_url, namespace, caplog):
    sink = direct(outage.url("http", ""), namespace=namespace)
    outage.refuse()
    with caplog.at_level(logging.INFO, logger="resilience"):
        for interval in range(20):
            for i in range(10):  # 200 events from the application during the outage
                emit(Event("breaker", "rejected", "app-dependency", {"state": "open", "retry_after": 1.0}))
                sink.increment("app.calls", 1.0, {"name": f"n{i}"})
            sink.flush()
            sink.send_pending()  # never raises
            if interval == 9:
                assert breakers.get(BREAKER).state == "open"
                outage.heal()  # CloudWatch is back, but the open breaker sends nothing until open_for has passed
    assert breakers.get(BREAKER).state == "open"
    assert listed(moto_url, namespace) == []
    memory = InMemorySink.last
    assert memory.value("resilience.metrics.write_failed", name="cloudwatch") == 30  # 3 calls failed, 10 points each
    assert memory.value("resilience.metrics.batch_dropped", name="cloudwatch") == 170  # 17 batches not sent
    lines = [f"{r.name} {r.getMessage()}" for r in caplog.records]
    assert len(lines) <= 8, lines  # 20 intervals, 200 events: a line per kind, not per event or per batch


def test_close_is_bounded_when_cloudwatch_hangs(settings, outage, namespace):
    configure(settings, {"namespace": namespace, "endpoint_url": outage.url("http", "")})
    outage.blackhole()
    trip("payments")
    sink = cloudwatch_sink()
    sink.flush()  # the sender takes this batch and waits on the black hole
    trip("search")
    started = time.monotonic()
    sink.close(timeout=1.0)
    assert time.monotonic() - started < 1.5
    emit(Event("breaker", "rejected", "after-close", {}))  # the closed sink still takes counts without raising


def test_a_cut_cloudwatch_never_changes_a_response_nor_logs_per_request(settings, client, outage, caplog):
    settings.ROOT_URLCONF = "tests.urls_sinks"
    configure(settings, sink_paths=())
    expected, baseline = serve(client, caplog, None)
    breakers.reload()
    configure(settings, {"endpoint_url": outage.url("http", "")})
    outage.refuse()
    emit(Event("app", "warmup", "x", {}))  # builds the sink
    got, lines = serve(client, caplog, cloudwatch_sink(), close=True)
    assert got == expected  # 502s, then 503s: the same bytes
    assert [line for line in lines if line.startswith("django.")] == [line for line in baseline if line.startswith("django.")]
    sink_lines = [line for line in lines if line.startswith("resilience.metrics") or BREAKER in line]
    assert 1 <= len(sink_lines) <= 6, sink_lines  # ten failed intervals and 200 requests: a few lines, none per request






# Settings.
@pytest.mark.parametrize(
    ("cloudwatch", "message"),
    [
        ({"queue_size": 0}, f'{PATH}["queue_size"] must be'),
        ({"max_series": 0}, f'{PATH}["max_series"] must be'),
        ({"high_resolution": "yes"}, f'{PATH}["high_resolution"] must be True or False'),
        ({"region": "Mars"}, f'{PATH}["region"] must be None'),
        ({"endpoint_url": "ftp://example.com"}, f'{PATH}["endpoint_url"] must be None or an http(s)'),
        ({"endpoint_url": "http://user:secret@example.com"}, f'{PATH}["endpoint_url"] must be None or an http(s)'),
        ({"namespace": "AWS/EC2"}, f'{PATH}["namespace"] must be'),
        ({"dimensions": {"name": "x"}}, f"{PATH}[\"dimensions\"]['name'] is a tag every event sets"),
        ({"intervall": 60}, PATH),
    ],
)
def test_a_malformed_setting_is_e001_naming_the_key(settings, cloudwatch, message):
    configure(settings, cloudwatch)
    errors = [m for m in run_checks() if m.id.startswith("resilience.E")]
    assert [m.id for m in errors] == ["resilience.E001"]
    assert message in errors[0].msg, errors[0].msg
    assert "secret" not in errors[0].msg  # a URL's password is not echoed


def test_the_cloudwatch_settings_default_when_absent(settings):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": [CLOUDWATCH]}}
    assert [m for m in run_checks() if m.id.startswith("resilience.E")] == []
    config = cloudwatch_sink().config
    assert (config.namespace, config.dimensions, config.region, config.endpoint_url) == ("Resilience", (), None, None)
    assert (config.high_resolution, config.interval, config.storage_resolution) == (False, 60.0, 60)
    assert (config.queue_size, config.max_series) == (100, 10_000)
