"""CloudWatchEMFSink: every line obeys the EMF specification (``emf_spec``), counting stays off the
call's path, and a broken output never reaches a call or costs a log line per request."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks

from resilience import CircuitOpenError, circuit_breaker
from resilience.core.event import Event
from resilience.observability import events
from resilience.observability.emf import CloudWatchEMFSink
from resilience.observability.emf_settings import MAX_STATIC_DIMENSIONS, parse_emf
from resilience.observability.events import emit, sinks
from resilience.observability.metrics import InMemorySink
from tests.urls_sinks import serve

from .emf_spec import dimensions, documents, metric_values, problems

EMF = "resilience.observability.emf.CloudWatchEMFSink"
MEMORY = "resilience.observability.metrics.InMemorySink"
PATH = 'RESILIENCE["METRICS"]["EMF"]'
ROOT = Path(__file__).resolve().parents[2]


def configure(settings, emf=None, sink_paths=(EMF,), **resilience):
    settings.RESILIENCE = {
        "HISTORY": False,
        "METRICS": {"SINKS": list(sink_paths), "EMF": {"interval": 60, **(emf or {})}},
        "BREAKERS": {"default": {"minimum_calls": 2, "open_for": 30}},
        **resilience,
    }


def emf_sink() -> CloudWatchEMFSink:
    """The sink the event path built from the settings."""
    return next(s for s in sinks() if isinstance(s, CloudWatchEMFSink))


def direct(**options) -> CloudWatchEMFSink:
    """A sink on its own, flushed by the test (no thread)."""
    return CloudWatchEMFSink(parse_emf(options, PATH), thread=False)


def _fail():
    raise ConnectionError("down")


def trip(name: str) -> None:
    breaker = circuit_breaker(name)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)


class BrokenStream(io.TextIOBase):
    """A standard output whose reader went away: every write raises."""

    writes = 0

    def write(self, text):
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture
def fresh_summary(monkeypatch):
    """Log summaries that start empty, so the first event of a kind is logged at once."""
    monkeypatch.setattr(events, "summary", events.LogSummary())


# The validator itself: it must refuse what the specification forbids, or passing it proves nothing.
GOOD = {
    "_aws": {
        "Timestamp": 0,
        "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["name"]], "Metrics": [{"Name": "m", "Unit": "Count"}]}],
    },
    "name": "x",
    "m": 1,
}


def _broken(change):
    document = json.loads(json.dumps(GOOD))
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (_broken(lambda d: d["_aws"].update(Timestamp=1.5)), "Timestamp is not an integer"),
        (_broken(lambda d: d["_aws"].update(Timestamp=1_700_000_000)), "Timestamp 1700000000 is not milliseconds"),
        (_broken(lambda d: d.update(name=7)), "dimension 'name' has no string value"),
        (_broken(lambda d: d.update(name=" ")), "dimension 'name' has no string value"),
        (_broken(lambda d: d.update(name="pä")), "dimension 'name' has no string value"),
        (_broken(lambda d: d.pop("m")), "metric 'm' has no number"),
        (_broken(lambda d: d.pop("_aws")), "no _aws metadata object"),
        (_broken(lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Name="name")), "both a metric and a dimension"),
        (_broken(lambda d: d.update(m="1")), "metric 'm' has no number"),
        (_broken(lambda d: d.update(m=list(range(101)))), "metric 'm' has no number (or array of at most 100)"),
        (_broken(lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Namespace="AWS/EC2")), "reserved AWS/ prefix"),
        (_broken(lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Counts")), "has unit 'Counts'"),
        (_broken(lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(StorageResolution=5)), "StorageResolution 5"),
        (
            _broken(lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Dimensions=[[f"d{i}" for i in range(31)]])),
            "at most 30 distinct names",
        ),
        (
            _broken(
                lambda d: (
                    d["_aws"]["CloudWatchMetrics"][0].update(Metrics=[{"Name": f"m{i}"} for i in range(101)]),
                    d.update({f"m{i}": i for i in range(101)}),
                )
            ),
            "101 metrics in one document",
        ),
        (json.dumps(GOOD) + " trailing", "not JSON"),
    ],
)
def test_the_rules_refuse_what_the_emf_specification_forbids(line, rule):
    now = 0 if "Timestamp 1700000000" not in rule else 1_700_000_000_000
    assert problems(json.dumps(GOOD), now_ms=0) == []
    assert any(rule in problem for problem in problems(line, now_ms=now)), problems(line, now_ms=now)


# What the sink writes.
def test_five_hundred_breakers_tripping_write_valid_lines_within_every_limit(settings, capsys):
    static = {f"Dim{i:02}": f"v{i}" for i in range(MAX_STATIC_DIMENSIONS)}  # as many as settings allow
    configure(settings, {"dimensions": static, "namespace": "Resilience/test"})
    names = [f"breaker-{i:03}" for i in range(500)]
    for name in names:
        trip(name)
    capsys.readouterr()
    emf_sink().flush()
    lines = documents(capsys.readouterr().out)  # each one checked against every rule
    opened = {dimensions(d)["name"]: metric_values(d) for d in lines if dimensions(d).get("new_state") == "open"}
    assert sorted(opened) == names  # a line per breaker: one value per dimension in a line
    assert all(values == {"resilience.breaker.transition": 1} for values in opened.values())
    widest = max(len(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) for d in lines)
    assert widest == MAX_STATIC_DIMENSIONS + 2 <= 30  # static + name + new_state


def test_more_than_a_hundred_metrics_with_the_same_tags_are_split_into_lines_of_a_hundred(capsys):
    sink = direct()
    for i in range(250):
        sink.increment(f"app.metric.{i:03}", 1.0, {"name": "same"})
    sink.flush()
    lines = documents(capsys.readouterr().out)
    assert [len(metric_values(d)) for d in lines] == [100, 100, 50]
    assert sorted(m for d in lines for m in metric_values(d)) == [f"app.metric.{i:03}" for i in range(250)]


def test_a_series_with_more_than_thirty_dimensions_is_refused_and_counted(settings, capsys, caplog, fresh_summary):
    static = {f"Dim{i:02}": "v" for i in range(MAX_STATIC_DIMENSIONS)}
    configure(settings, {"dimensions": static}, sink_paths=(EMF, MEMORY))
    sink = emf_sink()
    sink.increment("app.wide", 1.0, {"name": "x", "a": "1", "b": "2", "c": "3"})  # 27 + 4 = 31
    sink.increment("app.narrow", 1.0, {"name": "x", "a": "1", "b": "2"})  # 27 + 3 = 30: written
    sink.flush()
    lines = documents(capsys.readouterr().out)
    assert [list(metric_values(d)) for d in lines] == [["app.narrow"]]
    assert InMemorySink.last.value("resilience.metrics.series_refused", name="emf") == 1
    refused = [r for r in caplog.records if r.getMessage().startswith("metrics series_refused name=emf")]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING


def test_series_past_max_series_are_dropped_and_counted(settings, capsys):
    configure(settings, {"max_series": 10}, sink_paths=(EMF, MEMORY))
    sink = emf_sink()
    for i in range(20):
        sink.increment("app.calls", 1.0, {"name": f"n{i}"})
        sink.increment("app.calls", 1.0, {"name": f"n{i}"})
    sink.flush()
    lines = documents(capsys.readouterr().out)
    assert sorted(dimensions(d)["name"] for d in lines) == [f"n{i}" for i in range(10)]  # the first ten, fully counted
    assert all(metric_values(d) == {"app.calls": 2} for d in lines)
    assert InMemorySink.last.value("resilience.metrics.series_overflow", name="emf") == 20  # the points not shipped


def test_counts_are_summed_over_the_interval_and_start_again_after_each_flush(capsys):
    sink = direct()
    for _ in range(5):
        sink.increment("resilience.breaker.rejected", 1.0, {"name": "p", "state": "open"})
    sink.increment("resilience.breaker.rejected", 3.0, {"name": "p", "state": "open"})  # a summary of 3
    sink.flush()
    first = documents(capsys.readouterr().out)
    sink.flush()  # nothing happened in this interval: nothing written
    assert capsys.readouterr().out == ""
    sink.increment("resilience.breaker.rejected", 1.0, {"name": "p", "state": "open"})
    sink.flush()
    second = documents(capsys.readouterr().out)
    assert [metric_values(d) for d in first] == [{"resilience.breaker.rejected": 8}]
    assert [metric_values(d) for d in second] == [{"resilience.breaker.rejected": 1}]
    assert first[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Count"


def test_counts_from_many_threads_add_up_exactly_across_flushes(capsys):
    sink = direct()
    done = threading.Event()

    def count():
        for _ in range(5_000):
            sink.increment("app.calls", 1.0, {"name": "shared"})

    workers = [threading.Thread(target=count) for _ in range(8)]
    for worker in workers:
        worker.start()
    flushing = threading.Thread(target=lambda: [sink.flush() for _ in iter(lambda: done.wait(0.001), True)])
    flushing.start()
    for worker in workers:
        worker.join()
    done.set()
    flushing.join()
    sink.flush()
    lines = documents(capsys.readouterr().out)
    assert sum(metric_values(d)["app.calls"] for d in lines) == 8 * 5_000  # nothing lost or counted twice


def test_a_gauge_reports_its_last_value_in_the_interval(capsys):
    sink = direct(storage_resolution=1)
    for value in (3600, 1800, 240):
        sink.gauge("resilience.aws.credentials_expires_in", value, {"name": "arn:aws:iam::1:role/app"})
    sink.flush()
    [line] = documents(capsys.readouterr().out)
    assert metric_values(line) == {"resilience.aws.credentials_expires_in": 240}
    assert line["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "resilience.aws.credentials_expires_in", "StorageResolution": 1}  # a level: no Count unit
    ]


def test_namespace_and_static_dimensions_come_from_settings(settings, capsys):
    configure(settings, {"namespace": "Shop/Orders", "dimensions": {"Service": "orders", "Environment": "prod"}})
    emit(Event("breaker", "rejected", "payments", {"state": "open", "retry_after": 3}))
    emf_sink().flush()
    [line] = documents(capsys.readouterr().out)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Shop/Orders"
    assert dimensions(line) == {"Service": "orders", "Environment": "prod", "name": "payments", "state": "open"}
    assert "retry_after" not in line  # fields other than the tags stay out: no unbounded label


def test_names_that_are_not_plain_ascii_are_escaped_into_distinct_valid_values(capsys):
    sink = direct()
    for name in ("zahlungen-ä", "zahlungen-\u00e4\u0308", "line\nbreak", " "):
        sink.increment("app.calls", 1.0, {"name": name})
    sink.flush()
    lines = documents(capsys.readouterr().out)
    shown = sorted(dimensions(d)["name"] for d in lines)
    assert shown == sorted(["zahlungen-\\xe4", "zahlungen-\\xe4\\u0308", "line\\nbreak", '" "'])


def test_the_logger_output_writes_one_record_per_line_at_info(settings, caplog):
    configure(settings, {"logger": "emf.metrics"})
    with caplog.at_level(logging.INFO, logger="emf.metrics"):
        trip("logged")
        emf_sink().flush()
    records = [r for r in caplog.records if r.name == "emf.metrics"]
    lines = documents("\n".join(r.getMessage() for r in records))
    assert all(r.levelno == logging.INFO for r in records)
    assert [metric_values(d) for d in lines if dimensions(d)["name"] == "logged"] == [{"resilience.breaker.transition": 1}]


def test_the_stdout_output_writes_json_lines(settings, capsys):
    configure(settings)
    trip("printed")
    emf_sink().flush()
    out = capsys.readouterr().out
    assert out.endswith("\n") and all(line.startswith('{"_aws":') for line in out.splitlines())
    assert [metric_values(d) for d in documents(out) if dimensions(d)["name"] == "printed"] == [
        {"resilience.breaker.transition": 1}
    ]


# Failure never reaches a call, and costs a bounded number of log lines.
def test_a_broken_stream_never_raises_into_a_call_and_is_logged_once(settings, monkeypatch, caplog, fresh_summary):
    configure(settings, sink_paths=(EMF, MEMORY))
    stream = BrokenStream()
    monkeypatch.setattr(sys, "stdout", stream)
    breaker = circuit_breaker("broken-out")
    trip("broken-out")
    sink = emf_sink()
    with caplog.at_level(logging.INFO, logger="resilience"):
        for _ in range(10):
            for _ in range(100):
                with pytest.raises(CircuitOpenError):  # the call's own outcome, nothing else
                    breaker.call(lambda: None)
            sink.flush()  # an interval passes: the write fails
    failed = [r for r in caplog.records if "write_failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].getMessage().startswith("metrics write_failed name=emf")
    assert failed[0].levelno == logging.WARNING and "error=BrokenPipeError" in failed[0].getMessage()
    assert InMemorySink.last.value("resilience.metrics.write_failed", name="emf") >= 10  # lines lost, counted


def test_counting_never_touches_the_output(monkeypatch):
    stream = BrokenStream()
    monkeypatch.setattr(sys, "stdout", stream)
    sink = direct()
    for i in range(10_000):
        sink.increment("app.calls", 1.0, {"name": f"n{i % 50}"})
        sink.gauge("app.level", i, {"name": "g"})
    assert stream.writes == 0
    sink.flush()
    assert stream.writes == 1  # the first line fails; the rest of the interval is dropped, not retried line by line






def test_a_failing_sink_never_changes_a_response_nor_logs_per_request(settings, client, monkeypatch, caplog):
    settings.ROOT_URLCONF = "tests.urls_sinks"
    configure(settings, sink_paths=())
    monkeypatch.setattr(events, "summary", events.LogSummary())
    expected, baseline = serve(client, caplog, None)
    configure(settings, {"max_series": 1})  # full after the first series, and a broken output
    monkeypatch.setattr(sys, "stdout", BrokenStream())
    monkeypatch.setattr(events, "summary", events.LogSummary())
    emit(Event("app", "warmup", "x", {}))  # builds the sink, which takes the one series it has room for
    got, lines = serve(client, caplog, emf_sink())
    assert got == expected  # 502, 502, then 503s: the same bytes
    extra = [line.split(" name=")[0] for line in lines if line.startswith("resilience.metrics ")]
    assert len(lines) - len(baseline) == len(extra) == 2  # ten failed intervals, 190 requests past the limit: two lines
    assert sorted(extra) == ["resilience.metrics metrics series_overflow", "resilience.metrics metrics write_failed"]


# Shutdown and settings changes.
def test_a_settings_change_writes_the_old_sinks_last_interval_and_stops_its_thread(settings, capsys):
    configure(settings, {"namespace": "Before"})
    trip("before-change")
    old = emf_sink()
    assert old._thread is not None and old._thread.is_alive()  # started by the first count
    capsys.readouterr()
    configure(settings, {"namespace": "After"})  # setting_changed: the sinks are rebuilt
    old._thread.join(3)
    assert not old._thread.is_alive()
    lines = documents(capsys.readouterr().out)
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in lines} == {"Before"}
    assert emf_sink() is not old and emf_sink().config.namespace == "After"


def test_a_forked_child_starts_empty_and_leaves_the_parents_counts_to_the_parent(capsys):
    sink = direct()
    sink.increment("app.calls", 1.0, {"name": "parent"})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: count, write its interval into the pipe, leave without cleanup
        try:
            sys.stdout = os.fdopen(write, "w")
            sink.increment("app.calls", 1.0, {"name": "child"})
            sink.flush()
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    os.waitpid(pid, 0)
    sink.flush()
    from_parent = capsys.readouterr().out
    assert [dimensions(d)["name"] for d in documents(from_child)] == ["child"]  # not the parent's point again
    assert [dimensions(d)["name"] for d in documents(from_parent)] == ["parent"]


def test_the_last_interval_is_written_at_exit():
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from django.conf import settings
        from resilience.conf import resilience_settings
        from resilience.core.event import Event
        from resilience.observability.events import emit
        settings.RESILIENCE = {"HISTORY": False, "METRICS": {
            "SINKS": ["resilience.observability.emf.CloudWatchEMFSink"], "EMF": {"interval": 3600}}}
        resilience_settings.reload()
        for _ in range(3):
            emit(Event("breaker", "rejected", "at-exit", {"state": "open"}))
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    [line] = documents(done.stdout)
    assert dimensions(line)["name"] == "at-exit" and metric_values(line) == {"resilience.breaker.rejected": 3}


# The whole path: a real breaker on the real shared store.
def test_a_breaker_opening_through_real_calls_is_one_transition_in_the_emf_line(settings, key_prefix, capsys):
    configure(settings, {"dimensions": {"Service": "orders"}}, REDIS=django_settings.TEST_REDIS_URL, KEY_PREFIX=key_prefix)
    breaker = circuit_breaker("emf-e2e")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    capsys.readouterr()
    emf_sink().flush()
    lines = [d for d in documents(capsys.readouterr().out) if dimensions(d).get("name") == "emf-e2e"]
    by_state = {(dimensions(d).get("new_state"), dimensions(d).get("state")): metric_values(d) for d in lines}
    assert by_state == {
        ("open", None): {"resilience.breaker.transition": 1},
        (None, "open"): {"resilience.breaker.rejected": 3},
    }
    assert all(dimensions(d)["Service"] == "orders" for d in lines)


# Settings.
@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"EMF": {"interval": 0}}, f'{PATH}["interval"] must be a number from 1 to 3600, got 0'),
        ({"EMF": {"interval": 7200}}, f'{PATH}["interval"] must be a number from 1 to 3600, got 7200'),
        ({"EMF": {"namespace": "AWS/EC2"}}, f'{PATH}["namespace"] must be 1-255 of'),
        ({"EMF": {"namespace": "has space"}}, f'{PATH}["namespace"] must be 1-255 of'),
        ({"EMF": {"dimensions": {f"D{i}": "x" for i in range(28)}}}, f'{PATH}["dimensions"] must have at most 27 dimensions'),
        ({"EMF": {"dimensions": {"name": "x"}}}, f"{PATH}[\"dimensions\"]['name'] is a tag every event sets"),
        ({"EMF": {"dimensions": {":Service": "x"}}}, f"{PATH}[\"dimensions\"] has the name ':Service'"),
        ({"EMF": {"dimensions": {"Service": "ordérs"}}}, f"{PATH}[\"dimensions\"]['Service'] must be 1-1024 printable ASCII"),
        ({"EMF": {"dimensions": {"Service": "  "}}}, f"{PATH}[\"dimensions\"]['Service'] must be 1-1024 printable ASCII"),
        ({"EMF": {"dimensions": ["Service"]}}, f'{PATH}["dimensions"] must be a dict'),
        ({"EMF": {"storage_resolution": 5}}, f'{PATH}["storage_resolution"] must be 60 or 1, got 5'),
        ({"EMF": {"logger": ""}}, f'{PATH}["logger"] must be None (standard output) or a logger name'),
        ({"EMF": {"max_series": 0}}, f'{PATH}["max_series"] must be a whole number from 1 to 1000000'),
        ({"EMF": {"namspace": "x"}}, f"{PATH} has unknown key(s) 'namspace'; known: dimensions, interval"),
        ({"EMF": []}, f"{PATH} must be a dict, got list"),
        ({"EMFF": {}}, "RESILIENCE[\"METRICS\"] has unknown key(s) 'EMFF'; known: CLOUDWATCH, EMF, PROMETHEUS, SINKS"),
    ],
)
def test_a_malformed_emf_setting_is_a_start_up_error_naming_the_key(settings, metrics, message):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": [EMF], **metrics}}
    errors = [m for m in run_checks() if m.id.startswith("resilience.E")]
    assert [m.id for m in errors] == ["resilience.E001"]
    assert message in errors[0].msg, errors[0].msg
    emit(Event("breaker", "rejected", "x", {}))  # at run time: no sink, no exception into the call


def test_the_emf_settings_default_when_absent(settings):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": [EMF]}}
    assert [m for m in run_checks() if m.id.startswith("resilience.E")] == []
    config = emf_sink().config
    assert (config.namespace, config.dimensions, config.interval, config.logger) == ("Resilience", (), 60, None)
    assert (config.storage_resolution, config.max_series) == (60, 10_000)
