"""The "Circuits" admin page through Django's test client: what it shows, the confirmation step of
every manual action, the timeline from CircuitEvent, and its cost with 50 breakers and 10,000 events."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from resilience import circuit_breaker
from resilience.breakers.registry import breakers
from resilience.models import CircuitEvent
from resilience.observability import history
from resilience.retries.policies import policy
from tests.test_admin_browser import CHANGELIST, logged_in_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)
TIMINGS = Path("/tmp/notes/h10-timings.txt")


@pytest.fixture
def recording(settings: Any) -> Iterator[None]:
    settings.RESILIENCE = {
        "HISTORY": True,
        "BREAKERS": {"payments": {"minimum_calls": 4, "failure_rate": 50, "slow_call": 10.0}, "inventroy": {}},
    }
    yield
    history.flush()  # written before the database is emptied, not into the next test's


@pytest.fixture
def operator() -> Any:
    return logged_in_client(staff_user("operator", "view_circuit", "change_circuit", "view_circuitevent"))


def _fail() -> None:
    raise ConnectionError("down")


def _trip(name: str, failures: int, successes: int) -> None:
    breaker = circuit_breaker(name)
    for _ in range(successes):
        breaker.call(lambda: None)
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)


def _row(html: str, name: str) -> str:
    match = re.search(rf'<tr class="circuit" data-name="{re.escape(name)}">(.*?)</tr>', html, flags=re.DOTALL)
    assert match, f"no row for {name}"
    return match.group(1)


def test_the_page_shows_the_badge_the_rates_at_the_last_trip_and_who_caused_the_last_transition(recording, operator):
    _trip("payments", failures=3, successes=1)  # 75 % of 4 calls failed: open
    history.flush()
    html = operator.get(CHANGELIST).content.decode()
    row = _row(html, "payments")
    assert '<span class="cb-badge cb-open">open</span>' in row  # colour class, and the state in words
    assert "75.0 % failed" in row and "0.0 % slow" in row and "of 4 calls" in row
    assert "closed &rarr; open" in row and "threshold" in row and "the breaker itself" in row
    assert 'href="/admin/resilience/circuitevent/?breaker__exact=payments"' in row
    CircuitEvent.objects.create(breaker="payments-eu", old_state="closed", new_state="open")
    linked = operator.get("/admin/resilience/circuitevent/?breaker__exact=payments")
    assert linked.status_code == 200 and linked.context["cl"].result_count == 1  # that breaker's history only

    operator.post(CHANGELIST, {"action": "force_open", "name": "payments", "confirm": "yes"})
    history.flush()
    row = _row(operator.get(CHANGELIST).content.decode(), "payments")
    assert '<span class="cb-badge cb-forced_open">forced_open</span>' in row
    assert "open &rarr; forced_open" in row and "force_open" in row and "admin:operator" in row
    assert "75.0 % failed" in row  # the last trip is still the automatic one


@pytest.mark.parametrize(
    ("action", "state", "done"), [("force_open", "forced_open", "forced open"), ("disable", "disabled", "disabled")]
)
def test_a_manual_action_asks_for_confirmation_first_and_acts_only_when_confirmed(recording, operator, action, state, done):
    breaker = circuit_breaker("payments")
    first = operator.post(CHANGELIST, {"action": action, "name": "payments"})
    assert first.status_code == 200
    assert first.templates[0].name == "admin/resilience/circuit/confirm.html"
    page = first.content.decode()
    assert 'name="confirm" value="yes"' in page and 'id="confirm-no"' in page and "csrfmiddlewaretoken" in page
    assert breaker.state == "closed"  # nothing happened yet

    confirmed = operator.post(CHANGELIST, {"action": action, "name": "payments", "confirm": "yes"})
    assert (confirmed.status_code, confirmed["Location"]) == (302, CHANGELIST)
    assert breaker.state == state
    shown = [m.message for m in operator.get(CHANGELIST).context["messages"]]
    assert shown == [f"Circuit 'payments' {done}."]
    history.flush()
    assert list(CircuitEvent.objects.values_list("new_state", "reason", "actor")) == [(state, action, "admin:operator")]

    operator.post(CHANGELIST, {"action": "reset", "name": "payments"})
    assert breaker.state == state  # reset asks too
    operator.post(CHANGELIST, {"action": "reset", "name": "payments", "confirm": "yes"})
    assert breaker.state == "closed"


def test_a_disabled_breaker_lets_failing_calls_through_without_tripping(recording, operator):
    operator.post(CHANGELIST, {"action": "disable", "name": "payments", "confirm": "yes"})
    _trip("payments", failures=10, successes=0)
    assert circuit_breaker("payments").state == "disabled"


def test_an_unknown_action_or_name_is_refused_before_any_confirmation_page(recording, operator):
    attempts = [{"action": "explode", "name": "payments"}, {"action": "disable", "name": "nope"}]
    for data in [*attempts, *({**a, "confirm": "yes"} for a in attempts)]:
        response = operator.post(CHANGELIST, data)
        assert (response.status_code, response["Location"]) == (302, CHANGELIST), data
    assert "nope" not in breakers.names()


def test_a_configured_breaker_nothing_uses_is_listed_as_unused(recording, operator):
    circuit_breaker("payments")  # declared by code
    html = operator.get(CHANGELIST).content.decode()
    unused = re.search(r'<ul id="circuit-unused">(.*?)</ul>', html, flags=re.DOTALL)
    assert unused and re.findall(r"<li>(.*?)</li>", unused.group(1)) == ["inventroy"]


def test_store_health_lists_the_breaker_store_each_retry_budget_and_the_rate_limit_store(shared_breakers, operator):
    policy("http")  # builds its retry budget
    html = operator.get(CHANGELIST).content.decode()
    health = dict(re.findall(r'<li data-store="([^"]+)"><span class="(cb-ok|cb-down)">', html))
    assert {store: health.get(store) for store in ("breaker state", "retry budget http", "rate limits")} == {
        "breaker state": "cb-ok",
        "retry budget http": "cb-ok",
        "rate limits": "cb-ok",
    }
    assert "Redis (every worker)" in html


def test_the_page_reloads_itself_every_30_seconds_unless_turned_off(recording, operator):
    on = operator.get(CHANGELIST).content.decode()
    assert '<meta http-equiv="refresh" content="30">' in on
    assert "refresh=0" in re.search(r'id="circuit-refresh">(.*?)</span>', on, flags=re.DOTALL).group(1)
    off = operator.get(CHANGELIST + "?refresh=0").content.decode()
    assert 'http-equiv="refresh"' not in off and "Auto-refresh is off" in off
    bogus = operator.get(CHANGELIST + "?refresh=0.001").content.decode()  # only the offered intervals
    assert '<meta http-equiv="refresh" content="30">' in bogus


def _fill_history(names: list[str], events: int, span: timedelta) -> None:
    """``events`` transitions spread evenly over ``span`` up to now, round robin over ``names``:
    each breaker cycles closed -> open -> half_open -> closed."""
    cycle = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    rows = [
        CircuitEvent(
            breaker=names[k % len(names)],
            old_state=cycle[(k // len(names)) % 3][0],
            new_state=cycle[(k // len(names)) % 3][1],
            reason="threshold",
            failure_rate=60.0,
            slow_rate=0.0,
            calls=20,
        )
        for k in range(events)
    ]
    CircuitEvent.objects.bulk_create(rows, batch_size=2000)
    first = CircuitEvent.objects.order_by("id").values_list("id", flat=True).first()
    step = span.total_seconds() / events
    start = timezone.now() - span
    with connection.cursor() as cursor:  # created_at is auto_now_add: spread the rows in one statement
        cursor.execute(
            "UPDATE resilience_circuitevent SET created_at = %s + (id - %s) * %s * interval '1 second'", [start, first, step]
        )


def _timed_get(client: Any, url: str) -> tuple[Any, float, int]:
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
    return response, elapsed, len(queries)


def test_the_page_with_50_breakers_and_10000_events_draws_bounded_bars_with_a_fixed_number_of_queries(settings, operator):
    names = [f"dependency-{i:02d}" for i in range(50)]
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {names[0]: {}}}
    _fill_history(names[:1], 1, timedelta(days=7))
    operator.get(CHANGELIST + "?range=7d")
    small, _, few_queries = _timed_get(operator, CHANGELIST + "?range=7d")  # one breaker, one event
    assert small.status_code == 200
    CircuitEvent.objects.all().delete()
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {name: {} for name in names}}
    _fill_history(names, 10_000, timedelta(days=7))

    lines = []
    for url in (CHANGELIST, CHANGELIST + "?range=7d", CHANGELIST + "?range=7d&page=2"):
        operator.get(url)  # warm: templates compiled, breakers built
        runs = [_timed_get(operator, url) for _ in range(5)]
        response, _, queries = runs[-1]
        ms = statistics.median(run[1] for run in runs)
        html = response.content.decode()
        rows = re.findall(r'<g class="timeline-row" data-name="([^"]+)"', html)
        bars = re.findall(r'<rect class="segment state-(\w+)"', html)
        lines.append(
            f"{url}: {ms:.0f} ms (median of 5), {queries} queries, {len(rows)} timeline rows, {len(bars)} bars,"
            f" {len(html) // 1024} KiB"
        )
        assert response.status_code == 200
        assert len(rows) == 25  # paginated: 25 breakers per page
        assert len(bars) <= 25 * (168 if "7d" in url else 96)
        assert set(bars) <= {"closed", "open", "half_open"}
        assert queries == few_queries  # no query per breaker or per event
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def test_a_breaker_store_that_lost_redis_is_shown_unhealthy_and_the_page_still_renders(settings, redis_server, operator):
    settings.RESILIENCE = {"HISTORY": False, "REDIS": redis_server.url, "KEY_PREFIX": "h10-health", "BREAKERS": {"payments": {}}}
    circuit_breaker("payments").force_open()
    assert "cb-down" not in re.findall(
        r'<li data-store="breaker state"><span class="(cb-\w+)">', operator.get(CHANGELIST).content.decode()
    )
    redis_server.kill()

    page = operator.get(CHANGELIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert re.findall(r'<li data-store="breaker state"><span class="(cb-\w+)">', html) == ["cb-down"]
    assert "Redis unreachable: showing and deciding on local state" in html
    assert '<span class="cb-badge cb-forced_open">forced_open</span>' in _row(html, "payments")  # the last known state
