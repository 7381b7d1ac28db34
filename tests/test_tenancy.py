"""tenancy: TENANT_RESOLVER parsed by conf, the tenant resolved once per request, and scope keys."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from resilience.exceptions import ConfigurationError
from resilience.tenancy import current_request, parse_resolver, scope_key, tenant_of

CALLS = []
UUID = __import__("uuid").UUID("12345678-1234-5678-1234-567812345678")


def counting(request):
    CALLS.append(request)
    return getattr(request, "tid", None)


def failing(request):
    raise RuntimeError("the resolver is broken")


@pytest.fixture
def resolver(settings):
    def use(name):
        settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": f"tests.test_tenancy.{name}"}
        CALLS.clear()

    return use


def test_the_resolver_is_imported_and_must_be_callable():
    assert parse_resolver("tests.test_tenancy.counting", "P") is counting
    with pytest.raises(ConfigurationError, match=r"^P names 'no\.such\.path', which cannot be imported \(ModuleNotFoundError\)$"):
        parse_resolver("no.such.path", "P")
    with pytest.raises(ConfigurationError, match=r"^P 'tests\.test_tenancy\.CALLS' is not callable$"):
        parse_resolver("tests.test_tenancy.CALLS", "P")


def test_the_tenant_is_resolved_once_per_request(resolver):
    resolver("counting")
    request = RequestFactory().get("/")
    request.tid = "acme"
    assert [tenant_of(request) for _ in range(3)] == ["acme"] * 3
    assert len(CALLS) == 1
    other = RequestFactory().get("/")
    assert tenant_of(other) is None and tenant_of(other) is None  # "no tenant" is remembered too
    assert len(CALLS) == 2


@pytest.mark.parametrize("value", ["", ["acme"], None, True, 4.2])
def test_anything_but_a_non_empty_string_a_whole_number_or_a_uuid_is_no_tenant(resolver, value):
    resolver("counting")
    request = RequestFactory().get("/")
    request.tid = value
    assert tenant_of(request) is None


@pytest.mark.parametrize(("value", "tenant"), [(42, "42"), (0, "0"), (UUID, str(UUID))])
def test_a_whole_number_or_a_uuid_is_the_tenant_as_text(resolver, value, tenant):
    """Found by a README audit: a resolver returning a primary key silently meant no tenant: no tenant
    limits, no stale values."""
    resolver("counting")
    request = RequestFactory().get("/")
    request.tid = value
    assert tenant_of(request) == tenant


def test_a_failing_resolver_is_no_tenant_and_one_event(resolver, caplog):
    import logging

    resolver("failing")
    with caplog.at_level(logging.INFO, logger="resilience"):
        assert tenant_of(RequestFactory().get("/")) is None
    assert any("tenancy resolver_failed" in r.getMessage() for r in caplog.records)


def test_scope_keys_come_from_the_current_request(resolver):
    resolver("counting")
    assert scope_key("public") == "public"
    assert scope_key("tenant") is None  # no request
    request = RequestFactory().get("/")
    request.tid, request.user = "acme", AnonymousUser()
    token = current_request.set(request)
    try:
        assert scope_key("tenant") == "t:acme"
        assert scope_key("user") is None  # anonymous
        request.user = type("U", (), {"is_authenticated": True, "pk": 7})()
        assert scope_key("user") == "t:acme|u:7"
    finally:
        current_request.reset(token)


def test_a_drf_request_resolves_its_own_tenant_not_its_http_requests(resolver):
    """Resolvers read ``request.auth``, which only the DRF Request has: its answer is its own."""
    from rest_framework.request import Request

    resolver("counting")
    http = RequestFactory().get("/")
    assert tenant_of(http) is None
    drf = Request(http)
    drf.tid = "from-the-token"
    assert tenant_of(drf) == "from-the-token"
    assert len(CALLS) == 2
