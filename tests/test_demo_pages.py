"""The demo's pages from the project-level ``templates/``: index, dashboard and the operator's status page."""

import re

import pytest
from django.test import Client

from resilience import circuit_breaker
from resilience.observability import history
from tests.test_admin_browser import logged_in_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(settings):
    settings.ROOT_URLCONF = "project.urls"
    settings.RESILIENCE = {
        "HISTORY": True,
        "BREAKERS": {"upstream": {"minimum_calls": 2}},
        "ROUTES": [{"path": "/api/*", "timeout": 5, "max_concurrency": 100}],
        "RATE_LIMITS": {"ip": "600/min"},
        "METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySink"]},
    }
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "5/min"}}


def _fail():
    raise ConnectionError("down")


def test_the_index_and_dashboard_render_from_the_project_templates_and_link_to_the_status_page(demo):
    index = Client().get("/")
    assert index.status_code == 200
    assert [t.name for t in index.templates][:2] == ["demo/index.html", "base.html"]
    assert str(index.templates[0].origin.name).endswith("/templates/demo/index.html")
    assert "/resilience/templates/" not in str(index.templates[0].origin.name)  # project level, not the app's
    dashboard = Client().get("/api/dashboard/")
    assert dashboard.status_code == 200
    assert re.search(r'<a href="/status/" id="status-link">', dashboard.content.decode())


def test_the_status_page_needs_the_view_circuit_permission(demo):
    anonymous = Client().get("/status/")
    assert (anonymous.status_code, anonymous["Location"]) == (302, "/admin/login/?next=/status/")
    outsider = logged_in_client(staff_user("outsider", "view_user", app_label="auth")).get("/status/")
    assert outsider.status_code == 302


def test_the_status_page_shows_breakers_with_their_timeline_limits_metrics_and_stores(demo):
    breaker = circuit_breaker("upstream")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    history.flush()
    page = logged_in_client(staff_user("viewer", "view_circuit")).get("/status/")
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(
        r'<tr class="breaker" data-name="upstream"><th scope="row">upstream</th><td><span class="cb-badge cb-open">open</span>',
        html,
    )
    assert re.search(
        r'<g class="timeline-row" data-name="upstream".*?<rect class="segment state-closed".*?<rect class="segment state-open"',
        html,
        flags=re.DOTALL,
    )
    limits = re.findall(r'<tr class="limit"><th scope="row">(.*?)</th><td>(.*?)</td>', html)
    assert limits == [
        ("every client (middleware)", "600/min"),
        ("route /api/*", "5 s deadline, 100 at once"),
        ("DRF throttle login", "5/min"),
    ]
    metrics = re.findall(r'<tr class="metric"><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>', html)
    assert ("resilience.breaker.transition", "name=upstream, new_state=open", "1") in metrics
    assert 'id="health"' in html and 'class="cb-down"' not in html


def test_the_status_page_in_a_browser_draws_badges_and_the_timeline(demo, live_server, browser):
    from selenium.webdriver.common.by import By

    from tests.test_admin_browser import log_in, wait_for
    from tests.test_admin_timeline_browser import screenshot

    circuit_breaker("tips").force_open(actor="admin:alice")
    breaker = circuit_breaker("upstream")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    history.flush()
    staff_user("viewer", "view_circuit")
    log_in(browser, live_server, "viewer", next_url="/status/")
    badge = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'tr.breaker[data-name="upstream"] .cb-badge'), "no badge")
    assert badge.text == "open"
    bars = browser.find_elements(By.CSS_SELECTOR, 'g.timeline-row[data-name="tips"] rect.segment')
    assert [b.get_attribute("class") for b in bars] == ["segment state-closed", "segment state-forced_open"]
    assert all(b.rect["width"] > 0 for b in bars)
    screenshot(browser, "demo-status")
