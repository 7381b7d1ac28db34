"""The "Circuits" admin page driven through a real browser (headless Chromium) against a live server.

The live server runs in a thread of this process, so it shares the ``breakers`` registry (and, with
``shared_breakers``, the real Redis behind it) with the test. Set ``CIRCUITS_SCREENSHOT=/path.png``
to save a screenshot of the dashboard while the tests run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from resilience.fallbacks.degrade import degradable
from resilience.signals import event_emitted
from tests.waiting import wait_for as wait_until

CHANGELIST = "/admin/resilience/circuit/"
PASSWORD = "correct-horse-battery-staple"
WAIT = 10  # seconds; every wait polls and returns as soon as its condition holds

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], message: str) -> Any:
    waiter = WebDriverWait(
        driver, WAIT, poll_frequency=0.05, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )
    return waiter.until(condition, message)


def log_in(driver: WebDriver, live_server: Any, username: str, next_url: str = CHANGELIST) -> None:
    """Through the real admin login form, then wait for the page it redirects to."""
    driver.get(f"{live_server.url}/admin/login/?next={next_url}")
    wait_for(driver, lambda d: d.find_element(By.ID, "id_username"), "no login form")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    wait_for(driver, lambda d: d.current_url == f"{live_server.url}{next_url}", f"login as {username!r} did not reach {next_url}")


def row(driver: WebDriver, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#circuits tr.circuit[data-name="{name}"]')


def row_state(driver: WebDriver, name: str) -> str:
    cell = row(driver, name).find_element(By.CSS_SELECTOR, "td.circuit-state")
    classes = cell.get_attribute("class").split()
    text = cell.text.strip()
    assert f"state-{text}" in classes, f"state cell text {text!r} does not match its classes {classes}"
    return text


def row_probe(driver: WebDriver, name: str) -> str:
    return str(row(driver, name).find_element(By.CSS_SELECTOR, "td.circuit-probe").text.strip())


def confirm(driver: WebDriver, name: str, label: str) -> None:
    """Every manual action shows a confirmation page first: check it names the breaker, then say yes."""
    button = wait_for(driver, lambda d: d.find_element(By.ID, "confirm-yes"), f"no confirmation page for {label} {name}")
    assert driver.find_element(By.ID, "confirm-name").text == name
    assert button.get_attribute("value") == f"Yes, {label.lower()} {name}"
    button.click()


def messages(driver: WebDriver, level: str) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, f"ul.messagelist li.{level}")]


# -- users ---------------------------------------------------------------------------------------
def staff_user(username: str, *codenames: str, app_label: str = "resilience") -> User:
    """A staff user (never a superuser) holding exactly the given permissions."""
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    perms = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
    assert sorted(p.codename for p in perms) == sorted(codenames), "permission missing from the test database"
    user.user_permissions.set(perms)
    return user


def logged_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def payments_forced_open(shared_breakers: Any) -> Any:
    breaker = shared_breakers.get_or_create("payments")
    breaker.force_open()
    assert breaker.state == "forced_open"
    return shared_breakers


@pytest.fixture
def transitions() -> Iterator[list[Any]]:
    """Every breaker transition event emitted while the test runs (the live server thread included)."""
    seen: list[Any] = []

    def receiver(sender: Any, event: Any, **kwargs: Any) -> None:
        if event.area == "breaker" and event.kind == "transition":
            seen.append(event)

    event_emitted.connect(receiver, weak=False, dispatch_uid="test_admin_browser.transitions")
    yield seen
    event_emitted.disconnect(dispatch_uid="test_admin_browser.transitions")


# -- tests ---------------------------------------------------------------------------------------
def test_staff_user_with_change_permission_resets_an_open_breaker_and_sees_it_closed(
    live_server: Any, browser: WebDriver, payments_forced_open: Any, transitions: list[Any]
) -> None:
    breakers = payments_forced_open
    staff_user("operator", "view_circuit", "change_circuit")

    log_in(browser, live_server, "operator")
    assert wait_for(browser, lambda d: row_state(d, "payments"), "no payments row") == "forced_open"
    assert "Redis" in browser.find_element(By.ID, "circuit-store").text
    if os.environ.get("CIRCUITS_SCREENSHOT"):
        browser.save_screenshot(os.environ["CIRCUITS_SCREENSHOT"])

    row(browser, "payments").find_element(By.CSS_SELECTOR, "button.circuit-reset").click()
    confirm(browser, "payments", "Reset")

    wait_for(browser, lambda d: messages(d, "success"), "no success message after reset")
    assert browser.current_url == f"{live_server.url}{CHANGELIST}"  # redirected back to the page (POST/redirect/GET)
    assert messages(browser, "success") == ["Circuit 'payments' reset."]
    assert messages(browser, "error") == []
    assert row_state(browser, "payments") == "closed"
    assert breakers.get("payments").state == "closed"
    breakers.store.refresh()  # and that is what the shared store (Redis) holds, not only this process's copy
    assert breakers.get("payments").state == "closed"
    manual = [(e.name, e.fields["old_state"], e.fields["new_state"], e.fields.get("actor")) for e in transitions]
    assert manual == [("payments", "forced_open", "closed", "admin:operator")]


def test_user_with_only_view_permission_sees_state_but_no_actions_and_cannot_post(
    live_server: Any, browser: WebDriver, payments_forced_open: Any, transitions: list[Any]
) -> None:
    breakers = payments_forced_open
    viewer = staff_user("viewer", "view_circuit")

    log_in(browser, live_server, "viewer")
    assert wait_for(browser, lambda d: row_state(d, "payments"), "no payments row") == "forced_open"
    assert browser.find_elements(By.CSS_SELECTOR, "#circuits button.circuit-reset") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#circuits button.circuit-force-open") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#circuits button.circuit-disable") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#circuits form") == []
    headers = [th.text.casefold() for th in browser.find_elements(By.CSS_SELECTOR, "#circuits thead th")]
    assert "actions" not in headers and "state" in headers

    client = logged_in_client(viewer)
    for action in ("reset", "force_open", "disable"):
        for confirmed in ({}, {"confirm": "yes"}):
            response = client.post(CHANGELIST, {"action": action, "name": "payments", **confirmed})
            assert response.status_code == 403, action
    assert breakers.get("payments").state == "forced_open"
    breakers.store.refresh()
    assert breakers.get("payments").state == "forced_open"
    assert transitions == []


def test_staff_user_without_circuit_permissions_cannot_open_the_page(
    live_server: Any, browser: WebDriver, shared_breakers: Any
) -> None:
    shared_breakers.get_or_create("payments")
    # Some unrelated permission, so the admin index lists something and the absence of Circuits means something.
    outsider = staff_user("outsider", "view_user", app_label="auth")

    client = logged_in_client(outsider)
    assert client.get(CHANGELIST).status_code == 403
    assert client.post(CHANGELIST, {"action": "force_open", "name": "payments"}).status_code == 403
    assert shared_breakers.get("payments").state == "closed"

    log_in(browser, live_server, "outsider", next_url="/admin/")
    content = wait_for(browser, lambda d: d.find_element(By.ID, "content-main"), "no admin index")
    assert browser.find_elements(By.CSS_SELECTOR, "#content-main a[href='/admin/auth/user/']"), "index lists nothing at all"
    assert browser.find_elements(By.CSS_SELECTOR, f"a[href='{CHANGELIST}']") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#content-main .app-resilience") == []
    assert "Circuits" not in content.text
    assert "payments" not in browser.page_source


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("nope\n*:{x}", id="newline-glob-braces"),
        pytest.param("x" * 10_240, id="10kB"),
        pytest.param("payments\x00", id="nul-suffix"),
        pytest.param("", id="empty"),
    ],
)
def test_admin_rejects_unknown_breaker_name_with_a_message_not_a_500(shared_breakers: Any, hostile: str) -> None:
    shared_breakers.get_or_create("payments").force_open()
    operator = staff_user("operator", "view_circuit", "change_circuit")
    client = logged_in_client(operator)
    client.raise_request_exception = False  # a crash must show up as a 500 here, not as an exception

    for action in ("reset", "force_open", "disable"):
        response = client.post(CHANGELIST, {"action": action, "name": hostile})
        assert response.status_code == 302, (action, response.status_code)
        assert response["Location"] == CHANGELIST

        page = client.get(response["Location"])
        assert page.status_code == 200
        shown = [(m.level_tag, m.message) for m in page.context["messages"]]
        assert shown == [("error", "Unknown circuit.")]
        if hostile:
            assert hostile not in page.content.decode()  # the page never echoes what was posted

    assert hostile not in shared_breakers.names()  # no breaker was created by the attempt
    assert [n for n in shared_breakers.names() if not n.startswith("postgres:")] == ["payments"]
    assert shared_breakers.get("payments").state == "forced_open"


def test_hostile_name_submitted_through_the_browser_form_shows_an_error(
    live_server: Any, browser: WebDriver, payments_forced_open: Any
) -> None:
    breakers = payments_forced_open
    staff_user("operator", "view_circuit", "change_circuit")

    log_in(browser, live_server, "operator")
    form_row = wait_for(browser, lambda d: row(d, "payments"), "no payments row")
    hidden = form_row.find_element(By.CSS_SELECTOR, "input[name=name]")
    browser.execute_script("arguments[0].value = arguments[1];", hidden, "nope\n*:{x}" + "y" * 10_240)
    form_row.find_element(By.CSS_SELECTOR, "button.circuit-reset").click()

    wait_for(browser, lambda d: messages(d, "error"), "no error message after posting an unknown name")
    assert messages(browser, "error") == ["Unknown circuit."]
    assert messages(browser, "success") == []
    assert "Server Error" not in browser.title
    assert row_state(browser, "payments") == "forced_open"
    assert breakers.get("payments").state == "forced_open"


def test_configured_and_declared_breakers_are_listed_before_any_call(
    live_server: Any, browser: WebDriver, shared_breakers: Any, settings: Any
) -> None:
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {"inventory": {"open_for": 45}}}

    @degradable("recommendations", breaker="recs", default=[])
    def recommendations() -> list[str]:
        return ["a"]

    shared_breakers.get_or_create("payments").force_open()
    staff_user("operator", "view_circuit", "change_circuit")

    log_in(browser, live_server, "operator")
    assert wait_for(browser, lambda d: row_state(d, "inventory"), "no row for the configured breaker") == "closed"
    assert row_state(browser, "recs") == "closed"  # declared by degradable, never called
    names = [tr.get_attribute("data-name") for tr in browser.find_elements(By.CSS_SELECTOR, "#circuits tr.circuit")]
    assert [n for n in names if not n.startswith("postgres:")] == ["inventory", "payments", "recs"]
    browser.save_screenshot(os.environ.get("CIRCUITS_SCREENSHOT", "/tmp/admin-declared.png"))

    row(browser, "recs").find_element(By.CSS_SELECTOR, "button.circuit-force-open").click()
    confirm(browser, "recs", "Force open")
    wait_for(browser, lambda d: messages(d, "success"), "no success message after force open")
    assert messages(browser, "success") == ["Circuit 'recs' forced open."]
    assert row_state(browser, "recs") == "forced_open"
    assert recommendations() == []


def test_an_open_breaker_whose_open_period_elapsed_shows_open_with_its_probe_due(
    live_server: Any, browser: WebDriver, shared_breakers: Any, settings: Any, transitions: list[Any]
) -> None:
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {"flaky": {"minimum_calls": 1, "open_for": 0.05}}}
    breaker = shared_breakers.get_or_create("flaky")
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert wait_until(lambda: shared_breakers.store.now() >= breaker.view().open_until)
    transitions.clear()
    staff_user("viewer", "view_circuit")

    log_in(browser, live_server, "viewer")
    assert wait_for(browser, lambda d: row_state(d, "flaky"), "no flaky row") == "open"  # not "half_open"
    assert row_probe(browser, "flaky") == "due: the next call probes"  # not "in 0.0 s"
    browser.save_screenshot(os.environ.get("CIRCUITS_SCREENSHOT_DUE", "/tmp/admin-due.png"))
    assert transitions == [] and breaker.view().state.value == "open"  # looking admitted no probe
    shared_breakers.store.refresh({"flaky"})
    assert breaker.view().state.value == "open"


def _fail() -> None:
    raise ConnectionError("down")
