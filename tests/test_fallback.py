"""Secure fallbacks on real Redis with two tenants: each only ever sees its own stale data."""

import base64
import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from resilience import breakers
from resilience.context import current_request
from resilience.core.fallback import FallbackChain, FallbackPolicy
from resilience.storage.stale import RedisStaleStore

from . import fallback_views

pytestmark = pytest.mark.django_db


def token(tid):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'tid': tid})}.sig"


@pytest.fixture
def wired(settings, key_prefix):
    settings.ROOT_URLCONF = "tests.fallback_views"
    settings.MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "resilience.middleware.ResilienceMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}


def client_of(tid, name):
    client = APIClient()
    client.force_authenticate(User.objects.create_user(name), token=token(tid))
    return client


def test_under_a_forced_open_breaker_each_tenant_sees_only_its_own_stale_data(wired):
    fallback_views.store.update({"tenant-a": ["a-secret"], "tenant-b": ["b-secret"]})
    a, b = client_of("tenant-a", "ann"), client_of("tenant-b", "bob")
    assert a.get("/dashboard/").json() == {"items": ["a-secret"]}
    assert b.get("/dashboard/").json() == {"items": ["b-secret"]}
    breakers.get("dashboard-source").force_open()
    assert a.get("/dashboard/").json() == {"items": ["a-secret"]}  # stale, its own
    assert b.get("/dashboard/").json() == {"items": ["b-secret"]}
    newcomer = client_of("tenant-c", "cyd")
    assert newcomer.get("/dashboard/").json() == {"items": []}  # never someone else's: the default


def test_without_a_tenant_nothing_stale_is_served(wired):
    fallback_views.store.update({None: ["anonymous"]})
    anonymous = APIClient()
    assert anonymous.get("/dashboard/").json() == {"items": ["anonymous"]}
    breakers.get("dashboard-source").force_open()
    assert anonymous.get("/dashboard/").json() == {"items": []}


class Request:
    """Just enough of a request for the tenant resolver under test."""

    def __init__(self, tenant):
        self.tenant = tenant


def request_tenant(request):
    return request.tenant


REQUESTS = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(0, 9)), max_size=25)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=REQUESTS)
def test_property_a_tenant_only_ever_gets_its_own_fresh_or_stale_data(settings, key_prefix, test_redis, requests):
    import uuid

    from resilience.context import scope_key

    settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": "tests.test_fallback.request_tenant"}
    store = RedisStaleStore(test_redis, f"{key_prefix}-{uuid.uuid4().hex[:8]}")
    chain = FallbackChain(FallbackPolicy("prop", stale_for=600, default="default"), store=store, scope_key=scope_key)
    last_good = {}
    for tenant, primary_ok, n in requests:
        value = f"{tenant}-{n}"

        def primary(value=value, ok=primary_ok):
            if not ok:
                raise ConnectionError
            return value

        token = current_request.set(Request(tenant))
        try:
            got = chain.call(primary)
        finally:
            current_request.reset(token)
        expected = value if primary_ok else last_good.get(tenant, "default")
        assert got == expected
        assert got == "default" or got.startswith(f"{tenant}-")
        if primary_ok:
            last_good[tenant] = value
