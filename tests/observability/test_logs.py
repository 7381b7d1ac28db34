"""JSON log lines (``JSONFormatter``) with the request and tenant ids (``RequestContextFilter``)."""

import json
import logging
import re

import pytest
from django.core.checks import run_checks
from django.test import Client

from resilience import breakers
from resilience.core.event import Event
from resilience.observability.events import emit
from resilience.observability.logs import JSONFormatter, RequestContextFilter

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"  # a bearer token that must appear nowhere


def tenant_header(request):
    return request.META.get("HTTP_X_TENANT")


class Lines(logging.Handler):
    """Formats every record of the ``resilience`` loggers as the documented LOGGING would."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.addFilter(RequestContextFilter())
        self.setFormatter(JSONFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))

    def parsed(self):
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def lines():
    handler = Lines()
    logger = logging.getLogger("resilience")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    yield handler
    logger.removeHandler(handler)
    logger.level = level


@pytest.fixture
def app(settings):
    settings.ROOT_URLCONF = "tests.urls_logs"
    settings.MIDDLEWARE = ["resilience.middleware.ResilienceMiddleware"]
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"tenant": "1000/min"}, "UNAUTHENTICATED_USER": None}
    settings.RESILIENCE = {
        "HISTORY": False,
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
        "TENANT_RESOLVER": "tests.observability.test_logs.tenant_header",
        "BREAKERS": {"logs-upstream": {"minimum_calls": 2, "failure_rate": 50, "window_type": "count", "window": 4}},
    }
    yield
    breakers.get("logs-upstream").reset()


def test_an_event_in_a_request_is_one_json_line_with_its_fields_request_id_and_tenant(app, lines):
    client = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_TENANT="acme", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    for _ in range(2):
        assert client.get("/api/flaky/").status_code == 503
    [opened] = [line for line in lines.parsed() if line.get("kind") == "transition"]
    assert opened["area"] == "breaker" and opened["name"] == "logs-upstream" and opened["new_state"] == "open"
    assert opened["level"] == "WARNING" and opened["logger"] == "resilience.breaker"
    assert opened["message"].startswith("breaker transition name=logs-upstream")
    assert opened["tenant"] == "acme"  # resolved by the DRF throttle, on the DRF Request
    assert re.fullmatch(r"[0-9a-f]{32}", opened["request_id"])  # our own: the peer is no trusted proxy
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", opened["time"])
    assert all(TOKEN not in line and "secret-payload" not in line for line in lines.lines)


def test_a_trusted_proxys_request_id_is_kept_and_anyone_elses_is_not(app, lines):
    Client(REMOTE_ADDR="10.1.2.3", HTTP_X_REQUEST_ID="lb-4f2a:77").get("/api/flaky/")
    Client(REMOTE_ADDR="198.51.100.7", HTTP_X_REQUEST_ID="forged-by-client").get("/api/flaky/")
    Client(REMOTE_ADDR="10.1.2.3", HTTP_X_REQUEST_ID='bad"id\nwith newline').get("/api/flaky/")
    ids = [line["request_id"] for line in lines.parsed() if "request_id" in line]
    assert "lb-4f2a:77" in ids
    assert "forged-by-client" not in ids and all("\n" not in i and '"' not in i for i in ids)


def test_a_hostile_tenant_is_logged_as_its_digest(app, lines):
    Client(REMOTE_ADDR="198.51.100.7", HTTP_X_TENANT='acme"\n{"admin":true}').get("/api/flaky/")
    Client(REMOTE_ADDR="198.51.100.7", HTTP_X_TENANT='acme"\n{"admin":true}').get("/api/flaky/")
    tenants = {line.get("tenant") for line in lines.parsed()} - {None}
    assert tenants and all(re.fullmatch(r"sha256:[0-9a-f]{16}", t) for t in tenants)


def test_outside_a_request_a_line_has_no_request_or_tenant(lines):
    emit(Event("breaker", "transition", "batch-job", {"old_state": "closed", "new_state": "open", "reason": "threshold"}))
    [line] = lines.parsed()
    assert "request_id" not in line and "tenant" not in line
    assert line["name"] == "batch-job" and line["reason"] == "threshold"


def test_event_fields_never_replace_the_base_fields(lines):
    emit(Event("breaker", "transition", "x", {"new_state": "open", "message": "forged", "level": "DEBUG"}))
    [line] = lines.parsed()
    assert line["level"] == "WARNING" and line["message"].startswith("breaker transition name=x")


@pytest.mark.parametrize("bad", ["X Request", "", 42, "x" * 65, "X-Id\n"])
def test_a_malformed_request_id_header_is_e001_naming_the_key(settings, bad):
    settings.RESILIENCE = {"HISTORY": False, "REQUEST_ID_HEADER": bad}
    errors = [e for e in run_checks() if e.id == "resilience.E001"]
    assert any('RESILIENCE["REQUEST_ID_HEADER"]' in e.msg for e in errors), errors
