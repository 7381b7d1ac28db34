"""The "Circuits" page in headless Chromium: badges that are more than a colour, the rates at the
last trip, the cause of the last transition, the state timeline SVG, and the confirmation step of
every manual action. Screenshots go to ``$CIRCUITS_SCREENS`` (default ``/tmp/notes/screens``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from resilience import circuit_breaker
from resilience.models import CircuitEvent
from resilience.observability import history
from tests.test_admin_browser import CHANGELIST, confirm, log_in, messages, row, row_state, staff_user, wait_for
from tests.test_admin_circuits import _fill_history

pytestmark = pytest.mark.django_db(transaction=True)
SCREENS = Path(os.environ.get("CIRCUITS_SCREENS", "/tmp/notes/screens"))
QUIET = CHANGELIST + "?refresh=0"  # no reload while the test looks


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page, not only the viewport: the window grows to the document for the shot."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 600), 4000))
    path = SCREENS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 900)
    return path


def _at(ages: list[tuple[str, str, str, timedelta, str]]) -> None:
    """Transitions in the past: (breaker, old, new, age, actor)."""
    now = timezone.now()
    for name, old, new, age, actor in ages:
        reason = new if actor else "threshold"
        event = CircuitEvent.objects.create(
            breaker=name, old_state=old, new_state=new, reason=reason, actor=actor, failure_rate=55.0, slow_rate=5.0, calls=40
        )
        CircuitEvent.objects.filter(pk=event.pk).update(created_at=now - age)


@pytest.fixture
def fleet(settings: Any) -> Iterator[None]:
    settings.RESILIENCE = {
        "HISTORY": True,
        "BREAKERS": {"payments": {"minimum_calls": 4}, "search": {}, "recs": {}, "inventroy": {}},
    }
    h = timedelta(hours=1)
    _at([
        ("payments", "closed", "open", 20 * h, ""), ("payments", "open", "half_open", 19 * h, ""),
        ("payments", "half_open", "closed", 19 * h - timedelta(minutes=1), ""),
        ("payments", "closed", "open", 9 * h, ""), ("payments", "open", "half_open", 8 * h, ""),
        ("payments", "half_open", "open", 7 * h, ""), ("payments", "open", "half_open", 6 * h, ""),
        ("payments", "half_open", "closed", 6 * h - timedelta(minutes=2), ""),
        ("search", "closed", "forced_open", 3 * h, "manage.py:ops"),
        ("recs", "closed", "disabled", 50 * h, "admin:alice"),
    ])  # fmt: skip
    circuit_breaker("search").force_open(actor="manage.py:ops")
    circuit_breaker("recs").disable(actor="admin:alice")
    breaker = circuit_breaker("payments")
    breaker.call(lambda: None)
    for _ in range(3):  # 75 % of 4 calls: open, now
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    history.flush()
    staff_user("operator", "view_circuit", "change_circuit", "view_circuitevent")
    yield
    history.flush()  # written before the database is emptied, not into the next test's


def _fail() -> None:
    raise ConnectionError("down")


def badge(driver: WebDriver, name: str) -> dict[str, str]:
    element = row(driver, name).find_element(By.CSS_SELECTOR, "td.circuit-state .cb-badge")
    style = driver.execute_script(
        "const s = getComputedStyle(arguments[0]), b = getComputedStyle(arguments[0], '::before');"
        "return {background: s.backgroundColor, icon: b.content, text: arguments[0].textContent.trim()};",
        element,
    )
    return dict(style)


def test_operator_sees_badges_rates_at_the_last_trip_causes_and_a_timeline_per_breaker(live_server, browser, fleet):
    log_in(browser, live_server, "operator", next_url=QUIET)
    assert wait_for(browser, lambda d: row_state(d, "payments"), "no payments row") == "open"

    badges = {name: badge(browser, name) for name in ("payments", "search", "recs", "inventroy")}
    assert {n: b["text"] for n, b in badges.items()} == {
        "payments": "open",
        "search": "forced_open",
        "recs": "disabled",
        "inventroy": "closed",
    }
    assert {n: b["icon"] for n, b in badges.items()} == {"payments": '"✕"', "search": '"■"', "recs": '"⊘"', "inventroy": '"✓"'}
    assert len({b["background"] for b in badges.values()}) == 4  # and a colour each

    trip = row(browser, "payments").find_element(By.CSS_SELECTOR, "td.circuit-trip").text
    assert "75.0 % failed" in trip and "0.0 % slow" in trip and "of 4 calls" in trip
    cause = row(browser, "search").find_element(By.CSS_SELECTOR, "td.circuit-cause")
    assert cause.find_element(By.CSS_SELECTOR, ".cause-actor").text == "manage.py:ops"
    assert row(browser, "payments").find_element(By.CSS_SELECTOR, ".cause-actor").text == "the breaker itself"
    history_link = row(browser, "payments").find_element(By.CSS_SELECTOR, "a.circuit-history")
    assert history_link.get_attribute("href").endswith("/admin/resilience/circuitevent/?breaker__exact=payments")
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#circuit-unused li")] == ["inventroy"]
    health = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#circuit-health li")]
    assert health[0] == "healthy breaker state: in-process (this worker)" and health[-1].endswith(
        "rate limits: in-process (this worker)"
    )

    timeline = browser.find_element(By.ID, "timeline")
    assert timeline.get_attribute("data-range") == "24h"
    payments = timeline.find_elements(By.CSS_SELECTOR, 'g.timeline-row[data-name="payments"] rect.segment')
    states = [r.get_attribute("class").split()[1] for r in payments]
    # 15-minute buckets, each showing the most severe state it held: the one-minute half_open at
    # 19 h ago shows as a bucket of its own; the open/half_open flapping 9-6 h ago stays visible
    expected = ["closed", "open", "half_open", "closed", "open", "half_open", "open", "half_open", "closed", "open"]
    assert states == [f"state-{s}" for s in expected]
    titles = [r.find_element(By.TAG_NAME, "title").get_attribute("textContent") for r in payments]
    assert titles[1].startswith("payments: open from ") and titles[1].endswith("; 2 transitions; also half open, closed")
    assert titles[2].endswith("; 1 transition; also closed")
    assert all(r.rect["width"] > 0 for r in payments)  # drawn, not only in the markup
    search = timeline.find_elements(By.CSS_SELECTOR, 'g.timeline-row[data-name="search"] rect.segment')
    assert [r.get_attribute("class").split()[1] for r in search] == ["state-closed", "state-forced_open"]
    assert len(browser.find_elements(By.CSS_SELECTOR, ".cb-legend li")) == 5
    screenshot(browser, "circuits-24h")

    browser.find_element(By.LINK_TEXT, "last 7 days").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "timeline").get_attribute("data-range") == "7d", "no 7-day timeline")
    recs = browser.find_elements(By.CSS_SELECTOR, 'g.timeline-row[data-name="recs"] rect.segment')
    assert [r.get_attribute("class").split()[1] for r in recs] == ["state-closed", "state-disabled"]
    screenshot(browser, "circuits-7d")


@pytest.mark.parametrize(
    ("button", "label", "state", "done"),
    [
        ("circuit-force-open", "Force open", "forced_open", "forced open"),
        ("circuit-disable", "Disable", "disabled", "disabled"),
        ("circuit-reset", "Reset", "closed", "reset"),
    ],
)
def test_each_manual_action_goes_through_a_confirmation_page(live_server, browser, fleet, button, label, state, done):
    log_in(browser, live_server, "operator", next_url=QUIET)
    row(browser, "payments").find_element(By.CSS_SELECTOR, f"button.{button}").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "confirm-yes"), "no confirmation page")
    assert browser.find_element(By.ID, "confirm-state").text == "open"
    assert label in browser.find_element(By.ID, "confirm-effect").text
    if button == "circuit-force-open":
        screenshot(browser, "confirm-force-open")
    browser.find_element(By.ID, "confirm-no").click()  # changing one's mind changes nothing
    wait_for(browser, lambda d: row_state(d, "payments"), "not back on the page")
    assert row_state(browser, "payments") == "open" and messages(browser, "success") == []

    row(browser, "payments").find_element(By.CSS_SELECTOR, f"button.{button}").click()
    confirm(browser, "payments", label)
    wait_for(browser, lambda d: messages(d, "success"), f"no success message after {label}")
    assert messages(browser, "success") == [f"Circuit 'payments' {done}."]
    assert row_state(browser, "payments") == state
    history.flush()
    browser.refresh()
    cause = row(browser, "payments").find_element(By.CSS_SELECTOR, "td.circuit-cause").text
    assert cause.startswith(f"open → {state}") and "admin:operator" in cause
    if button == "circuit-disable":
        screenshot(browser, "after-disable")


def test_fifty_breakers_with_ten_thousand_events_stay_readable_a_page_at_a_time(live_server, browser, settings):
    names = [f"dependency-{i:02d}" for i in range(50)]
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {name: {} for name in names}}
    _fill_history(names, 10_000, timedelta(days=7))
    with connection.cursor() as cursor:  # and a few that stayed quiet for the week: the page is not all stripes
        cursor.execute("DELETE FROM resilience_circuitevent WHERE breaker IN ('dependency-03', 'dependency-07')")
    staff_user("operator", "view_circuit")

    log_in(browser, live_server, "operator", next_url=QUIET)
    browser.get(f"{live_server.url}{QUIET}&range=7d")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline g.timeline-row"), "no timeline rows")
    assert len(rows) == 25
    first_page = [g.get_attribute("data-name") for g in rows]
    assert browser.find_element(By.ID, "circuit-pages").text.startswith("Breakers 1–25 of ")  # 50, and the database's breaker
    quiet = browser.find_elements(By.CSS_SELECTOR, 'g.timeline-row[data-name="dependency-03"] rect.segment')
    assert [r.get_attribute("class").split()[1] for r in quiet] == ["state-closed"]
    screenshot(browser, "timeline-50-breakers-7d")
    browser.find_element(By.CSS_SELECTOR, "#circuit-pages a[rel=next]").click()
    wait_for(browser, lambda d: "Breakers 26–" in d.find_element(By.ID, "circuit-pages").text, "no second page")
    second_page = [g.get_attribute("data-name") for g in browser.find_elements(By.CSS_SELECTOR, "#timeline g.timeline-row")]
    assert [n for n in first_page + second_page if not n.startswith("postgres:")] == names
