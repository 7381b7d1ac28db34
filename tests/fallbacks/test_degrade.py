"""Graceful degradation: decorator, template tag, DRF option, the critical 503, the demo page."""

import pytest
from django.template import Context, Template
from django.test import Client
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from resilience import CircuitOpenError, breakers, circuit_breaker
from resilience.fallbacks.degrade import DegradableViewMixin, degradable


def test_a_degradable_feature_returns_its_default_without_calling_while_its_breaker_is_open():
    calls = []

    @degradable("recs", breaker="recs", default=[])
    def recommendations():
        calls.append(1)
        return ["a"]

    assert recommendations() == ["a"]
    circuit_breaker("recs").force_open()
    assert recommendations() == [] and calls == [1]


def test_a_degradable_feature_falls_back_on_outage_errors_but_not_on_bugs():
    @degradable("feed", default="quiet")
    def feed(kind):
        raise {"outage": ConnectionError, "bug": KeyError}[kind]("x")

    assert feed("outage") == "quiet"
    with pytest.raises(KeyError):
        feed("bug")


def render(text, **context):
    return Template("{% load resilience %}" + text).render(Context(context))


BLOCK = '{% degradable "tips" breaker="tips" %}[{{ tips }}]{% otherwise %}(later){% enddegradable %}'


def test_template_block_renders_the_otherwise_part_while_the_breaker_is_open():
    assert render(BLOCK, tips="x") == "[x]"
    circuit_breaker("tips").force_open()
    assert render(BLOCK, tips="x") == "(later)"


def test_template_block_survives_a_dependency_failing_while_it_renders():
    def tips():
        raise CircuitOpenError("tips", 3.0)

    assert render(BLOCK, tips=tips) == "(later)"


def test_template_syntax_errors_are_clear():
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="usage"):
        render('{% degradable "a" "b" %}x{% enddegradable %}')


class Recs(DegradableViewMixin, APIView):
    degrade_when = ["recs-api"]
    degraded_response = {"items": [], "degraded": True}
    degraded_feature = "recommendations"

    def get(self, request):
        return Response({"items": ["fresh"]})


class PrivateRecs(Recs):
    permission_classes = [IsAuthenticated]


def test_drf_view_answers_its_degraded_response_while_the_breaker_is_open():
    view, factory = Recs.as_view(), APIRequestFactory()
    assert view(factory.get("/")).data == {"items": ["fresh"]}
    circuit_breaker("recs-api").force_open()
    response = view(factory.get("/"))
    assert (response.status_code, response.data, response["X-Degraded"]) == (
        200,
        {"items": [], "degraded": True},
        "recommendations",
    )


@pytest.mark.django_db
def test_degraded_answers_never_skip_authentication():
    circuit_breaker("recs-api").force_open()
    response = PrivateRecs.as_view()(APIRequestFactory().get("/"))
    assert response.status_code in (401, 403)


def test_a_degradable_features_breaker_is_listed_and_forcible_before_its_first_call():
    @degradable("recommendations", breaker="recs-early", default=[])
    def recommendations():
        return ["a"]

    assert "recs-early" in breakers.names()  # declared by the decorator: an operator can see it now
    breakers.get("recs-early").force_open()  # and force it, though nothing has called it yet
    assert recommendations() == []


def test_a_template_declares_the_breaker_it_names_when_compiled():
    Template('{% load resilience %}{% degradable "tips" breaker="tips-early" %}x{% enddegradable %}')
    assert "tips-early" in breakers.names()
    assert render('{% degradable "tips" breaker=name %}x{% enddegradable %}', name="dynamic") == "x"
    assert "dynamic" not in breakers.names()  # a name known only at render time declares nothing


def test_a_template_naming_an_impossible_breaker_is_a_syntax_error():
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="a breaker name must be 1-200 printable characters"):
        render('{% degradable "a" breaker="" %}x{% enddegradable %}')


def test_a_drf_views_breakers_are_declared_with_the_class():
    class Search(DegradableViewMixin, APIView):
        degrade_when = ["search-api", "ranking"]

    assert {"search-api", "ranking"} <= set(breakers.names())


@pytest.fixture
def demo(settings):
    settings.ROOT_URLCONF = "project.urls"
    settings.RESILIENCE = {"HISTORY": False}


def test_a_critical_feature_with_an_open_breaker_is_a_clear_503(demo):
    circuit_breaker("upstream").force_open()
    response = Client().get("/api/dashboard/")
    assert response.status_code == 503
    assert response.json() == {"detail": "A service this page needs is unavailable. Try again shortly."}
    assert response["Retry-After"] == "60"


def test_the_demo_page_renders_with_the_non_critical_dependency_down(demo):
    circuit_breaker("tips").force_open()
    page = Client().get("/api/dashboard/").content.decode()
    assert 'id="quote"' in page and 'id="tips-degraded"' in page and 'id="tips"' not in page


@pytest.mark.django_db(transaction=True)
def test_browser_shows_the_page_working_with_the_non_critical_dependency_down(demo, live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    circuit_breaker("tips").force_open()
    browser.get(f"{live_server.url}/api/dashboard/")
    assert browser.find_element(By.CSS_SELECTOR, "#quote blockquote").text == "Everything fails, all the time."
    assert "unavailable right now" in browser.find_element(By.ID, "tips-degraded").text
    assert browser.find_elements(By.ID, "tips") == []
    shot = tmp_path / "dashboard-degraded.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 5_000  # a real rendered page
    import os
    import shutil

    if os.environ.get("DEGRADED_SCREENSHOT"):
        shutil.copy(shot, os.environ["DEGRADED_SCREENSHOT"])
