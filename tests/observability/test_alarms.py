"""``manage.py resilience_alarms`` against a moto server (real HTTP): the alarm definitions, the diff,
idempotent apply, states driven with SetAlarmState (moto does not evaluate alarms), the dashboards."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from moto.cloudwatch.responses import CloudWatchResponse

from resilience.core.event import Event
from resilience.observability import dashboards, events
from resilience.observability.alarms import AlarmPlan, plan_from_settings, slug, wanted
from resilience.observability.emf import CloudWatchEMFSink
from tests.live import live_port, moto_server

REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:oncall"
ROLE = "arn:aws:iam::123456789012:role/app"
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    # moto 5.2 stores composite alarms (put_metric_alarm reads AlarmRule; DescribeAlarms lists them
    # as CompositeAlarms) but does not route the PutCompositeAlarm action to that method: route it.
    had = "put_composite_alarm" in vars(CloudWatchResponse)
    if not had:
        CloudWatchResponse.put_composite_alarm = CloudWatchResponse.put_metric_alarm  # type: ignore[attr-defined]
    with moto_server() as url:
        yield url
    if not had:
        del CloudWatchResponse.put_composite_alarm  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    settings.RESILIENCE = {
        "HISTORY": False,
        "BREAKERS": {"default": {}, "payments": {}, "search": {}},
        "METRICS": {"SINKS": [], "EMF": {"dimensions": {"Service": "orders"}}},
    }


@pytest.fixture
def prefix() -> str:
    """Each test its own alarm names in the module's moto account."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cloudwatch(moto_url: str) -> Any:
    return boto3.client(
        "cloudwatch", endpoint_url=moto_url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def run(moto_url: str, prefix: str, *args: str) -> str:
    out = io.StringIO()
    call_command("resilience_alarms", "--region", REGION, "--endpoint-url", moto_url, "--prefix", prefix, *args, stdout=out)
    return out.getvalue()


def described(cloudwatch: Any, prefix: str) -> dict[str, dict[str, Any]]:
    found = cloudwatch.describe_alarms(AlarmNamePrefix=f"{prefix}-", AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    return {a["AlarmName"]: a for a in [*found["MetricAlarms"], *found["CompositeAlarms"]]}


def wanted_names(prefix: str, critical: list[str] | None = None) -> set[str]:
    plan = plan_from_settings(["payments", "search", f"aws:cloudwatch:{REGION}"], critical)
    return {alarm["AlarmName"] for alarm in wanted(plan, prefix)}


def test_dry_run_on_an_empty_account_shows_every_alarm_as_an_addition_and_creates_nothing(moto_url, prefix, cloudwatch):
    out = run(moto_url, prefix)  # --dry-run is the default
    added = set(re.findall(r"^\+\+\+ b/(\S+)$", out, flags=re.MULTILINE))
    assert added == wanted_names(prefix)
    assert out.count("--- /dev/null") == len(added)
    assert not re.search(r"^-[^-]", out, flags=re.MULTILINE)  # nothing removed
    assert f"would create {len(added)}, would update 0, would delete 0" in out
    assert described(cloudwatch, prefix) == {}


def test_apply_creates_every_alarm_with_its_definition(moto_url, prefix, cloudwatch):
    out = run(moto_url, prefix, "--apply")
    alarms = described(cloudwatch, prefix)
    assert set(alarms) == wanted_names(prefix)
    assert f"created {len(alarms)}, updated 0" in out
    opens = alarms[f"{prefix}-breaker-open-payments"]
    assert {
        k: opens[k] for k in ("Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods", "DatapointsToAlarm")
    } == {
        "Namespace": "Resilience",
        "MetricName": "resilience.breaker.transition",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
    }
    assert (opens["Threshold"], opens["ComparisonOperator"], opens["TreatMissingData"]) == (
        1.0,
        "GreaterThanOrEqualToThreshold",
        "notBreaching",
    )
    assert sorted((d["Name"], d["Value"]) for d in opens["Dimensions"]) == [
        ("Service", "orders"),
        ("name", "payments"),
        ("new_state", "open"),
    ]
    give_ups = alarms[f"{prefix}-retry-give-up-http"]
    assert (give_ups["MetricName"], give_ups["EvaluationPeriods"], give_ups["DatapointsToAlarm"]) == (
        "resilience.retry.give_up",
        5,
        3,
    )
    assert f"{prefix}-retry-budget-refused-postgres" in alarms  # built-in policies have a budget by default
    assert f"{prefix}-aws-failover-cloudwatch" in alarms


def test_second_apply_changes_nothing_and_the_dry_run_diff_is_empty(moto_url, prefix, cloudwatch):
    run(moto_url, prefix, "--apply")
    before = {name: a["AlarmConfigurationUpdatedTimestamp"] for name, a in described(cloudwatch, prefix).items()}
    again = run(moto_url, prefix, "--apply")
    dry = run(moto_url, prefix, "--dry-run")
    for out in (again, dry):
        assert out.strip() == f"no changes: {len(before)} alarm(s) up to date"
    after = {name: a["AlarmConfigurationUpdatedTimestamp"] for name, a in described(cloudwatch, prefix).items()}
    assert after == before


def test_a_new_sns_topic_shows_a_precise_diff_and_apply_updates_it(moto_url, prefix, cloudwatch):
    run(moto_url, prefix, "--apply")
    out = run(moto_url, prefix, "--sns-topic", TOPIC)
    changed = {line.rstrip(",") for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))}
    names = wanted_names(prefix)
    assert changed == {
        '-  "AlarmActions": []',
        '-  "OKActions": []',
        '+  "AlarmActions": [',
        '+  "OKActions": [',
        f'+    "{TOPIC}"',
        "+  ]",
    }
    assert out.count("+++ b/") == len(names)
    assert f"would create 0, would update {len(names)}" in out
    run(moto_url, prefix, "--apply", "--sns-topic", TOPIC)
    for alarm in described(cloudwatch, prefix).values():
        assert (alarm["AlarmActions"], alarm["OKActions"]) == ([TOPIC], [TOPIC])
    assert "no changes" in run(moto_url, prefix, "--sns-topic", TOPIC)


def test_naming_the_critical_breakers_updates_only_the_composite_alarm(moto_url, prefix, cloudwatch):
    run(moto_url, prefix, "--apply")
    before = {name: a["AlarmConfigurationUpdatedTimestamp"] for name, a in described(cloudwatch, prefix).items()}
    composite = f"{prefix}-any-critical-dependency-down"
    out = run(moto_url, prefix, "--critical", "payments")
    assert re.findall(r"^\+\+\+ b/(\S+)$", out, flags=re.MULTILINE) == [composite]
    assert f'+  "AlarmRule": "ALARM(\\"{prefix}-breaker-open-payments\\")",' in out
    run(moto_url, prefix, "--apply", "--critical", "payments")
    after = described(cloudwatch, prefix)
    assert after[composite]["AlarmRule"] == f'ALARM("{prefix}-breaker-open-payments")'
    assert [n for n in after if after[n]["AlarmConfigurationUpdatedTimestamp"] != before[n]] == [composite]


def test_the_composite_alarm_names_each_breaker_alarm_and_a_breaker_alarm_can_be_driven_to_alarm(moto_url, prefix, cloudwatch):
    run(moto_url, prefix, "--apply")
    alarms = described(cloudwatch, prefix)
    rule = alarms[f"{prefix}-any-critical-dependency-down"]["AlarmRule"]
    breaker_alarms = {n for n in alarms if n.startswith(f"{prefix}-breaker-open-")}
    assert set(re.findall(r'ALARM\("([^"]+)"\)', rule)) == breaker_alarms
    assert rule == " OR ".join(f'ALARM("{n}")' for n in sorted(breaker_alarms))
    name = f"{prefix}-breaker-open-payments"
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="breaker payments opened (test)")
    assert described(cloudwatch, prefix)[name]["StateValue"] == "ALARM"
    assert f'ALARM("{name}")' in rule
    assert "no changes" in run(moto_url, prefix)  # a state is not a definition: nothing to put back


def test_each_alarm_watches_the_series_the_emf_sink_writes_for_its_event(settings, key_prefix, capsys):
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "METRICS": {"SINKS": ["resilience.observability.emf.CloudWatchEMFSink"],
                    "EMF": {"namespace": "Shop", "dimensions": {"Service": "orders", "Stage": "prod"}, "interval": 3600}},
        "AWS": {"CREDENTIALS": {"role_arn": ROLE, "region": "eu-west-1", "refresh_margin": 600, "schedule": 120}},
    }  # fmt: skip
    for event in [
        Event("breaker", "transition", "payments", {"old_state": "closed", "new_state": "open", "reason": "threshold"}),
        Event("retry", "give_up", "http", {"attempt": 3, "reason": "attempts", "error": "ConnectionError"}),
        Event("retry", "budget_refused", "aws", {"attempt": 1, "reason": "budget", "error": "ClientError"}),
        Event("storage", "store_unavailable", "retry_budget", {"budget": "aws", "error": "TimeoutError", "fallback": "local"}),
        Event("breaker", "transition", "redis:ratelimit", {"old_state": "closed", "new_state": "open", "reason": "threshold"}),
        Event("auth", "provider_unavailable", "entra", {"error": "ConnectTimeout", "cached_age": 10}),
        Event("auth", "unavailable", "entra", {"retry_after": 30.0}),
        Event("aws", "failover", "secretsmanager", {"operation": "get_secret_value", "from_region": "eu-west-1",
                                                    "to_region": "eu-central-1", "reason": "breaker_open"}),
        Event("aws", "credentials_refreshed", ROLE, {"expires_in": 3500, "by": "celery"}),
    ]:  # fmt: skip
        events.emit(event)
    [sink] = [s for s in events.sinks() if isinstance(s, CloudWatchEMFSink)]
    capsys.readouterr()
    sink.flush()
    written = set()
    for line in capsys.readouterr().out.splitlines():
        document = json.loads(line)
        [directive] = document["_aws"]["CloudWatchMetrics"]
        dimensions = frozenset((name, document[name]) for name in directive["Dimensions"][0])
        written |= {(directive["Namespace"], metric["Name"], dimensions) for metric in directive["Metrics"]}
    plan = plan_from_settings(["payments", "aws:secretsmanager:eu-west-1", "entra"])
    kinds = {"resilience.breaker.transition", "resilience.retry.give_up", "resilience.retry.budget_refused",
             "resilience.storage.store_unavailable", "resilience.auth.provider_unavailable", "resilience.auth.unavailable",
             "resilience.aws.failover", "resilience.aws.credentials_expires_in"}  # fmt: skip
    written = {series for series in written if series[1] in kinds}  # (credentials_refreshed is counted too)
    assert {metric for _, metric, _ in written} == kinds
    every = {(a["Namespace"], a["MetricName"], frozenset((d["Name"], d["Value"]) for d in a["Dimensions"])) for a in wanted(plan)
             if "MetricName" in a}  # fmt: skip
    assert len(written) == 9  # a series per event above
    assert written <= every  # each series written has an alarm on exactly its namespace, metric and dimensions
    ratelimit_store = {("Service", "orders"), ("Stage", "prod"), ("name", "redis:ratelimit"), ("new_state", "open")}
    assert ("Shop", "resilience.breaker.transition", frozenset(ratelimit_store)) in every  # REDIS set: watched
    credentials = next(a for a in wanted(plan) if a.get("MetricName") == "resilience.aws.credentials_expires_in")
    assert (credentials["Statistic"], credentials["Threshold"], credentials["ComparisonOperator"]) == (
        "Minimum",
        600.0,
        "LessThanThreshold",
    )
    assert (credentials["Period"], credentials["TreatMissingData"]) == (120, "breaching")


def test_breaker_names_that_could_break_a_composite_rule_get_distinct_plain_alarm_names():
    plan = AlarmPlan(breakers=('pay") OR ALARM("x', "pay_ OR ALARM_x", "zahlungsdienst-ä", "zahlungsdienst-ö"))
    names = [a["AlarmName"] for a in wanted(plan) if "MetricName" in a]
    assert len(set(names)) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9._:/@+=-]+", n) for n in names)
    assert slug("payments") == "payments"
    composite = wanted(plan)[-1]["AlarmRule"]
    assert re.findall(r'ALARM\("([^"]+)"\)', composite) == names


def test_dashboards_parse_and_cloudwatch_accepts_the_printed_body(moto_url, cloudwatch, settings):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": [], "EMF": {"namespace": "Shop"}}}
    for kind in dashboards.KINDS:
        assert json.loads((ROOT / "resilience/observability/dashboards" / f"{kind}.json").read_text())
    out = io.StringIO()
    call_command("resilience_alarms", "--print-dashboard", "cloudwatch", "--region", "eu-west-1", stdout=out)
    board = json.loads(out.getvalue())
    metrics = [w for w in board["widgets"] if w["type"] == "metric"]
    assert metrics and all(w["properties"]["region"] == "eu-west-1" for w in metrics)
    expressions = [q["expression"] for w in metrics for (q,) in w["properties"]["metrics"]]
    assert all('Namespace="Shop"' in e for e in expressions)
    [text] = [w["properties"]["markdown"] for w in board["widgets"] if w["type"] == "text"]
    assert "namespace `Shop`" in text and "Resilience`" not in text  # the words say what the graphs show
    shown = {m for e in expressions for m in re.findall(r'MetricName="([^"]+)"', e)}
    assert {"resilience.breaker.transition", "resilience.retry.give_up", "resilience.retry.budget_refused",
            "resilience.aws.failover", "resilience.aws.credentials_expires_in"} <= shown  # fmt: skip
    answer = cloudwatch.put_dashboard(DashboardName="resilience", DashboardBody=out.getvalue())
    assert answer["DashboardValidationMessages"] == []
    assert json.loads(cloudwatch.get_dashboard(DashboardName="resilience")["DashboardBody"]) == board

    out = io.StringIO()
    call_command("resilience_alarms", "--print-dashboard", "grafana", stdout=out)
    grafana = json.loads(out.getvalue())
    variables = {v["name"]: v for v in grafana["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "cloudwatch")
    assert variables["namespace"]["current"]["value"] == "Shop"
    targets = [t for p in grafana["panels"] for t in p["targets"]]
    assert all(t["datasource"]["uid"] == "${datasource}" and t["namespace"] == "$namespace" for t in targets)
    assert {t["metricName"] for t in targets} >= shown
    assert "state-timeline" in {p["type"] for p in grafana["panels"]}


def test_the_dashboards_ship_in_the_package():
    setup = (ROOT / "setup.cfg").read_text()
    data = re.search(r"^\[options.package_data\]\nresilience = (.*)$", setup, flags=re.MULTILINE)
    assert data and "observability/dashboards/*.json" in [p.strip() for p in data.group(1).split(",")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "bad prefix!"], "--prefix must be"),
        (["--sns-topic", "not-an-arn"], "--sns-topic must be an SNS topic ARN"),
        (["--critical", "nope"], "--critical names no known breaker: 'nope'"),
        (["--region", "moon-1"], "--region must be an AWS region name"),
        (["--print-dashboard", "kibana"], "invalid choice"),
        (["--apply", "--dry-run"], "not allowed with argument"),
    ],
)
def test_malformed_arguments_are_clear_command_errors(args, message, moto_url):
    region = [] if "--region" in args else ["--region", REGION]
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("resilience_alarms", *region, "--endpoint-url", moto_url, *args, stdout=io.StringIO())


def test_no_region_and_an_unreachable_endpoint_are_command_errors():
    with pytest.raises(CommandError, match="no AWS region"):
        call_command("resilience_alarms", stdout=io.StringIO())
    closed = f"http://127.0.0.1:{live_port()}"
    with pytest.raises(CommandError, match="CloudWatch could not be reached: EndpointConnectionError"):
        call_command("resilience_alarms", "--region", REGION, "--endpoint-url", closed, stdout=io.StringIO())


def test_a_malformed_argument_on_the_command_line_is_one_line_not_a_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "django", "resilience_alarms", "--settings", "tests.settings", "--region", REGION,
         "--sns-topic", "arn:aws:sns:oops"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("CommandError: --sns-topic must be an SNS topic ARN")


def test_alarms_no_longer_wanted_are_kept_unless_deletion_is_asked_for(moto_url, prefix, cloudwatch, settings):
    run(moto_url, prefix, "--apply")
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {"default": {}, "payments": {}}}
    gone = f"{prefix}-breaker-open-search"
    out = run(moto_url, prefix, "--apply")
    assert f"kept 1 alarm(s) under the prefix that are no longer wanted (--delete-stale removes them): {gone}" in out
    assert gone in described(cloudwatch, prefix)
    assert f'ALARM("{gone}")' not in described(cloudwatch, prefix)[f"{prefix}-any-critical-dependency-down"]["AlarmRule"]
    out = run(moto_url, prefix, "--delete-stale")
    assert f"--- a/{gone}\n+++ /dev/null" in out and "would delete 1" in out
    run(moto_url, prefix, "--apply", "--delete-stale")
    assert gone not in described(cloudwatch, prefix)
    assert run(moto_url, prefix, "--delete-stale").startswith("no changes")


def test_both_cloudwatch_sinks_under_different_names_are_a_clear_error_not_alarms_on_one_of_them(settings):
    settings.RESILIENCE = {
        "HISTORY": False,
        "METRICS": {
            "SINKS": ["resilience.observability.emf.CloudWatchEMFSink", "resilience.observability.cloudwatch.CloudWatchSink"],
            "EMF": {"namespace": "Shop"},
            "CLOUDWATCH": {"namespace": "Orders", "region": REGION},
        },
    }
    with pytest.raises(ValueError, match="different namespaces or dimensions"):
        plan_from_settings(["payments"])
    with pytest.raises(CommandError, match="different namespaces or dimensions"):
        call_command("resilience_alarms", "--print-dashboard", "cloudwatch", stdout=io.StringIO())
