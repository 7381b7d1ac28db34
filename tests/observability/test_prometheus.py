"""PrometheusSink and the scrape view: names and bounded labels, access never open by default, and a
real gunicorn with 4 workers in multiprocess mode where one scrape tells the whole truth."""

from __future__ import annotations

import re
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.core.checks import run_checks
from prometheus_client import REGISTRY

from resilience import breakers
from resilience.core.event import Event
from resilience.exceptions import ConfigurationError
from resilience.observability.events import emit
from resilience.observability.metrics import parse_metrics
from resilience.observability.prometheus import OTHER, PrometheusSink, export_call_totals
from resilience.observability.prometheus_settings import PrometheusConfig

from ..live import LiveServer

PROMETHEUS = "resilience.observability.prometheus.PrometheusSink"
PATH = 'RESILIENCE["METRICS"]["PROMETHEUS"]'
URL = "/resilience/metrics/"


def configure(settings, prometheus=None, **resilience):
    settings.ROOT_URLCONF = "tests.urls_prometheus"
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": [PROMETHEUS], "PROMETHEUS": prometheus or {}}, **resilience}


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


SERIES = {  # one series of each family, by a short name
    "open": ("resilience_breaker_transitions_total", {"name": "names-a", "to_state": "open"}),
    "rejected": ("resilience_breaker_calls_total", {"name": "names-a", "kind": "not_permitted"}),
    "retried": ("resilience_retry_decisions_total", {"name": "pg", "kind": "retried"}),
    "budget": ("resilience_retry_budget_refusals_total", {"name": "pg"}),
    "limited": ("resilience_ratelimit_decisions_total", {"name": "ip", "decision": "rejected"}),
    "stale": ("resilience_fallback_served_total", {"name": "prices", "step": "stale"}),
    "failover": ("resilience_aws_failovers_total", {"name": "secretsmanager", "kind": "failover"}),
    "other": ("resilience_events_total", {"area": "storage", "kind": "store_unavailable", "name": "breaker"}),
}


def test_events_are_counted_under_resilience4j_style_names(settings):
    configure(settings)
    before = {key: sample(metric, **labels) for key, (metric, labels) in SERIES.items()}
    emit(Event("breaker", "transition", "names-a", {"old_state": "closed", "new_state": "open"}))
    emit(Event("breaker", "rejected", "names-a", {"state": "open", "retry_after": 3}))
    emit(Event("retry", "retry", "pg", {"attempt": 1}))
    emit(Event("retry", "budget_refused", "pg", {"attempt": 2}))
    emit(Event("ratelimit", "rejected", "ip", {"retry_after": 1}))
    emit(Event("fallback", "stale", "prices", {}))
    emit(Event("aws", "failover", "secretsmanager", {"to_region": "eu-central-1"}))
    emit(Event("storage", "store_unavailable", "breaker", {"count": 3}))  # a summary of 3 adds 3
    after = {key: sample(metric, **labels) for key, (metric, labels) in SERIES.items()}
    assert {k: after[k] - before[k] for k in before} == {k: 3.0 if k == "other" else 1.0 for k in before}


def test_breaker_calls_are_counted_by_kind_from_the_breakers_totals_off_the_call_path(settings):
    configure(settings, {"export_interval": 300})  # the thread stays out of it: the test exports by hand
    breaker = breakers.get_or_create("kinds-a", minimum_calls=100, ignore=(KeyError,))

    def raising(exc):
        raise exc

    def counts():
        return [sample("resilience_breaker_calls_total", name="kinds-a", kind=k) for k in ("successful", "failed", "ignored")]

    before = counts()
    for _ in range(5):
        breaker.call(lambda: 1)
    for exc in (ConnectionError(), ConnectionError(), KeyError("ignored")):
        with pytest.raises((ConnectionError, KeyError)):
            breaker.call(raising, exc)
    assert counts() == before  # nothing reached Prometheus on the calls' path
    export_call_totals()
    export_call_totals()  # a second export adds only what grew since the first: nothing
    assert [a - b for a, b in zip(counts(), before, strict=True)] == [5.0, 2.0, 1.0]


def test_credentials_lifetime_is_a_gauge(settings):
    configure(settings)
    emit(Event("aws", "credentials_refreshed", "arn:aws:iam::1:role/app", {"expires_in": 3500, "by": "celery"}))
    assert sample("resilience_aws_credentials_expires_in_seconds", name="arn:aws:iam::1:role/app") == 3500


def test_labels_are_bounded_past_max_series_and_states_come_from_a_closed_set():
    sink = PrometheusSink(PrometheusConfig(max_series=3))
    keys = [sink.labels("resilience.breaker.rejected", {"name": f"bounded-{i}", "state": "open"}) for i in range(10)]
    assert [labels[0] for _, labels in keys] == ["bounded-0", "bounded-1", "bounded-2", *[OTHER] * 7]
    assert sink.labels("resilience.breaker.transition", {"name": "bounded-0", "new_state": "x" * 500})[1] == ("bounded-0", OTHER)
    assert len(sink.labels("resilience.breaker.rejected", {"name": "n" * 10_000})[1][0]) <= 200


def test_settings_errors_name_the_key(settings):
    with pytest.raises(ConfigurationError, match=re.escape(f'{PATH}["allow"][0] is not an IP network')):
        parse_metrics({"PROMETHEUS": {"allow": ["nope"]}}, 'RESILIENCE["METRICS"]')
    with pytest.raises(ConfigurationError, match=re.escape(f'{PATH}["max_series"] must be a whole number')):
        parse_metrics({"PROMETHEUS": {"max_series": 0}}, 'RESILIENCE["METRICS"]')
    with pytest.raises(ConfigurationError, match=re.escape(f"{PATH} has unknown key(s) 'alow'")):
        parse_metrics({"PROMETHEUS": {"alow": []}}, 'RESILIENCE["METRICS"]')
    settings.RESILIENCE = {"METRICS": {"SINKS": [], "PROMETHEUS": {"allow": "10.0.0.0/8"}}}
    errors = [e for e in run_checks() if e.id == "resilience.E001"]
    assert errors and '["PROMETHEUS"]["allow"]' in errors[0].msg


def test_defaults_let_nobody_scrape_by_address(settings):
    assert parse_metrics({"SINKS": []}, "M").options["PROMETHEUS"] == PrometheusConfig(allow=(), max_series=1000)


@pytest.mark.django_db
def test_anonymous_and_staff_without_permission_are_refused(settings, client):
    configure(settings)
    assert client.get(URL).status_code == 403
    client.force_login(User.objects.create_user("staff", is_staff=True))
    assert client.get(URL).status_code == 403


@pytest.mark.django_db
def test_staff_with_view_circuit_may_scrape(settings, client):
    configure(settings)
    user = User.objects.create_user("ops", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_circuit", content_type__app_label="resilience"))
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"resilience_breaker_store_up 1.0" in response.content


@pytest.mark.django_db
def test_allow_listed_address_may_scrape_and_a_spoofed_forwarded_for_may_not(settings, client):
    configure(settings, {"allow": ["10.0.0.0/8"]})
    assert client.get(URL, REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get(URL, REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403  # untrusted peer
    configure(settings, {"allow": ["10.0.0.0/8"]}, TRUSTED_PROXIES=["192.0.2.0/24"])
    assert client.get(URL, REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200  # via our proxy


@pytest.mark.django_db
def test_scrape_reads_breaker_state_from_the_store(settings, client):
    configure(settings, {"allow": ["127.0.0.1/32"]})
    breakers.get_or_create("scraped").force_open()
    text = client.get(URL).content.decode()
    assert 'resilience_breaker_state{name="scraped",state="forced_open"} 1.0' in text
    assert 'resilience_breaker_state{name="scraped",state="closed"} 0.0' in text


GUNICORN_CONF = """
from prometheus_client import multiprocess


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


def scraped(text: str, metric: str, **labels: str) -> float:
    """The value of one sample in exposition text (labels in any order); 0 if absent."""
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if found == labels:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.django_db
def test_one_scrape_of_four_gunicorn_workers_shows_the_trip_once_and_counts_add_up(tmp_path, key_prefix):
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent(GUNICORN_CONF))
    (tmp_path / "prom").mkdir()
    overrides = {
        "ROOT_URLCONF": "tests.urls_prometheus",
        "MIDDLEWARE": ["tests.worker_pid.WorkerPidMiddleware"],
        "RESILIENCE": {
            "HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix, "SYNC_INTERVAL": 0.1,
            "BREAKERS": {"x": {"minimum_calls": 3, "failure_rate": 50, "window_type": "count", "window": 10, "open_for": 300}},
            "METRICS": {"SINKS": [PROMETHEUS], "PROMETHEUS": {"allow": ["127.0.0.1/32"], "export_interval": 0.2}},
        },
    }  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with LiveServer(overrides, workers=4, env=env, args=["-c", str(tmp_path / "gunicorn.conf.py")]) as server:
        tripped = requests.get(server.url + "/call/?fail=1&times=3", timeout=5).json()["outcomes"]
        assert tripped == ["failed"] * 3  # one request, one worker: three failures trip the breaker there
        time.sleep(0.5)  # the other workers hear of it (SYNC_INTERVAL)

        def one(_: int) -> tuple[str, list[str]]:
            response = requests.get(server.url + "/call/", timeout=5)
            return response.headers["X-Worker-Pid"], response.json()["outcomes"]

        def fine(_: int) -> str:
            return requests.get(server.url + "/call/?breaker=y&times=2", timeout=5).headers["X-Worker-Pid"]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(40)))
            served = set(pool.map(fine, range(30)))  # 60 successful calls of y, over several workers
        rejected = sum(outcomes.count("rejected") for _, outcomes in results)
        assert len({pid for pid, _ in results}) > 1 and len(served) > 1  # spread over workers
        time.sleep(1.0)  # every worker exports its call totals (export_interval 0.2 s)
        text = requests.get(server.url + URL, timeout=5).text

    assert scraped(text, "resilience_breaker_state", name="x", state="open") == 1.0
    assert scraped(text, "resilience_breaker_state", name="x", state="closed") == 0.0
    assert scraped(text, "resilience_breaker_transitions_total", name="x", to_state="open") == 1.0
    assert rejected == 40
    assert scraped(text, "resilience_breaker_calls_total", kind="not_permitted", name="x") == rejected
    assert scraped(text, "resilience_breaker_calls_total", kind="failed", name="x") == 3.0  # the trip's calls
    assert scraped(text, "resilience_breaker_calls_total", kind="successful", name="y") == 60.0  # added up across workers


def test_rate_limit_decisions_are_counted_by_decision_admitted_ones_off_the_path(settings):
    from resilience.ratelimit.limiter import limiter
    from resilience.ratelimit.policies import policy

    configure(settings, {"export_interval": 300})
    rule = policy("prom-limit", "3/min", "test", "open")

    def counted(decision):
        return sample("resilience_ratelimit_decisions_total", name="prom-limit", decision=decision)

    before = {d: counted(d) for d in ("allowed", "rejected", "store_unavailable")}
    decisions = [limiter().hit([(rule, "client-1")], "prom-test").allowed for _ in range(5)]
    emit(Event("ratelimit", "store_unavailable", "prom-limit", {"fail": "open", "error": "ConnectionError"}))
    assert decisions == [True, True, True, False, False]
    assert counted("allowed") == before["allowed"]  # nothing on the path of an admitted request
    export_call_totals()
    assert {d: counted(d) - before[d] for d in before} == {"allowed": 3.0, "rejected": 2.0, "store_unavailable": 1.0}


@pytest.mark.parametrize(("allow", "warned"), [(["0.0.0.0/0"], True), (["10.0.0.0/8", "::/0"], True), (["10.0.0.0/8"], False)])
def test_an_allow_list_of_every_address_is_w014(settings, allow, warned):
    configure(settings, {"allow": allow})
    warnings = [m.msg for m in run_checks() if m.id == "resilience.W014"]
    assert bool(warnings) is warned


def test_retry_calls_are_counted_by_resilience4j_outcome_off_the_call_path(settings):
    from resilience import RetryPolicy, retry

    configure(settings, {"export_interval": 300})
    policy = retry(RetryPolicy(name="prom-retry", attempts=3, backoff=lambda attempt, previous, rng: 0.0))
    failures = iter([ConnectionError(), None, ConnectionError(), ConnectionError(), ConnectionError(), ValueError()])

    def flaky():
        exc = next(failures)
        if exc is not None:
            raise exc
        return "ok"

    def counts():
        kinds = ("successful_without_retry", "successful_with_retry", "failed_without_retry", "failed_with_retry")
        return [sample("resilience_retry_calls_total", name="prom-retry", kind=k) for k in kinds]

    before = counts()
    assert policy.call(flaky) == "ok"  # failed once, then succeeded: with retry
    with pytest.raises(ConnectionError):
        policy.call(flaky)  # three attempts, all failed: failed with retry
    with pytest.raises(ValueError):
        policy.call(flaky)  # not retryable: failed without retry
    assert policy.call(lambda: "ok") == "ok"  # successful without retry
    export_call_totals()
    assert [a - b for a, b in zip(counts(), before, strict=True)] == [1.0, 1.0, 1.0, 1.0]
