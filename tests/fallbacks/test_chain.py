"""Secure fallbacks on real Redis with two tenants: each only ever sees its own stale data."""

import base64
import datetime
import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from resilience import breakers
from resilience.core.fallback import FallbackChain, FallbackPolicy
from resilience.storage.redis.stale import RedisStaleStore
from resilience.tenancy import current_request
from tests import fallback_views

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

    from resilience.tenancy import scope_key

    settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": "tests.fallbacks.test_chain.request_tenant"}
    store = RedisStaleStore(test_redis, f"{key_prefix}:{uuid.uuid4().hex[:8]}")  # under the prefix the fixture cleans
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


# -- what comes back from Redis is hostile input ---------------------------------------------------
class PlantedPickle:
    """What a reviewer planted: unpickling it runs a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def stale_value_keys(client, prefix):
    """Every plain string key under ``prefix`` whose name says it holds a stale value (any layout)."""
    return sorted(k for k in client.scan_iter(f"{prefix}:*stale*", count=1000) if client.type(k) == b"string")


def test_a_planted_pickle_never_runs_in_the_worker_and_is_a_miss(wired, key_prefix, test_redis, tmp_path):
    import hashlib
    import pickle

    marker = tmp_path / "pwned"
    planted = pickle.dumps(PlantedPickle(marker))
    fallback_views.store.update({"tenant-a": ["a-secret"]})
    a, newcomer = client_of("tenant-a", "ann"), client_of("tenant-c", "cyd")
    a.raise_request_exception = newcomer.raise_request_exception = False
    assert a.get("/dashboard/").json() == {"items": ["a-secret"]}
    written = stale_value_keys(test_redis, key_prefix)
    assert written, "the successful call kept a stale value"
    for key in written:  # overwrite what the library wrote, wherever it wrote it
        test_redis.set(key, planted, px=60_000)
    # and the predictable key the pickling store read for a tenant that never stored anything
    old_layout = "dashboard|t:tenant-c|('tenant-c',)|[]"
    test_redis.set(f"{key_prefix}:stale:{hashlib.sha256(old_layout.encode()).hexdigest()}", planted, px=60_000)
    breakers.get("dashboard-source").force_open()
    answers = [a.get("/dashboard/"), newcomer.get("/dashboard/")]
    assert not marker.exists(), "the planted pickle ran inside the worker"
    assert [(r.status_code, r.json()) for r in answers] == [(200, {"items": []})] * 2  # a miss: the default


def remember(chain, tenant, value):
    token = current_request.set(Request(tenant))
    try:
        return chain.call(lambda: value)
    finally:
        current_request.reset(token)


def after_outage(chain, tenant):
    def down():
        raise ConnectionError

    token = current_request.set(Request(tenant))
    try:
        return chain.call(down)
    finally:
        current_request.reset(token)


def forgeries(sealed_by_us, now):
    from django.core import signing

    middle = len(sealed_by_us) // 2
    flipped = sealed_by_us[:middle] + (b"A" if sealed_by_us[middle : middle + 1] != b"A" else b"B") + sealed_by_us[middle + 1 :]
    return {
        "plain JSON": json.dumps({"at": now, "value": ["forged"]}).encode(),
        "plain JSON pair": json.dumps([now, ["forged"]]).encode(),
        "sealed under another key": signing.dumps({"at": now, "value": ["forged"]}, key="k" * 40, compress=True).encode(),
        "sealed without our purpose": signing.dumps({"at": now, "value": ["forged"]}, key=django_settings.SECRET_KEY).encode(),
        "one character flipped": flipped,
        "truncated": sealed_by_us[:-6],
        "not text": b"\x80\x81\xfe\xff" * 8,
        "empty": b"",
    }


@pytest.fixture
def sealed_chain(settings, key_prefix, test_redis):
    settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": "tests.fallbacks.test_chain.request_tenant"}
    from resilience.tenancy import scope_key

    store = RedisStaleStore(test_redis, key_prefix)
    return FallbackChain(FallbackPolicy("sealed", stale_for=600, default="default"), store=store, scope_key=scope_key)


def test_forged_or_tampered_stale_values_are_misses_never_errors(sealed_chain, key_prefix, test_redis):
    import time

    remember(sealed_chain, "a", ["a-secret"])
    (key,) = stale_value_keys(test_redis, key_prefix)
    genuine = test_redis.get(key)
    assert after_outage(sealed_chain, "a") == ["a-secret"]  # the genuine value verifies
    for label, forged in forgeries(genuine, time.time()).items():
        test_redis.set(key, forged, px=60_000)
        assert after_outage(sealed_chain, "a") == "default", label


def test_a_sealed_value_copied_to_another_tenants_key_does_not_verify(sealed_chain, key_prefix, test_redis):
    remember(sealed_chain, "a", ["a-secret"])
    (key_a,) = stale_value_keys(test_redis, key_prefix)
    remember(sealed_chain, "b", ["b-secret"])
    (key_b,) = set(stale_value_keys(test_redis, key_prefix)) - {key_a}
    test_redis.set(key_b, test_redis.get(key_a), px=60_000)  # whoever can write the shared Redis
    assert after_outage(sealed_chain, "b") == "default"  # never a's data, not even sealed by us
    assert after_outage(sealed_chain, "a") == ["a-secret"]


def test_stale_values_are_sealed_json_under_a_versioned_key(sealed_chain, key_prefix, test_redis):
    from django.core import signing

    remember(sealed_chain, "a", {"n": 1})
    (key,) = stale_value_keys(test_redis, key_prefix)
    assert key.decode().startswith(f"{key_prefix}:stale:v2:")
    raw = test_redis.get(key).decode("ascii")  # text, never a pickle
    with pytest.raises(signing.BadSignature):
        signing.loads(raw, key="k" * 40)
    assert 0 < test_redis.pttl(key) <= 600_000


# -- memory and Redis keep the same thing: what JSON returns ----------------------------------------
@pytest.fixture(params=["memory", "redis"])
def any_store(request, settings, key_prefix, test_redis):
    settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": "tests.fallbacks.test_chain.request_tenant"}
    from resilience.storage.memory.stale import MemoryStaleStore

    return MemoryStaleStore() if request.param == "memory" else RedisStaleStore(test_redis, key_prefix)


def chain_on(store, events=None, name="json"):
    from resilience.tenancy import scope_key

    policy = FallbackPolicy(name, stale_for=600, default="default")
    return FallbackChain(policy, store=store, scope_key=scope_key, emit=[].append if events is None else events.append)


@pytest.mark.parametrize(
    ("fresh", "stale"),
    [((1, "two", (3,)), [1, "two", [3]]), ({1: "a", "b": (2, 3)}, {"1": "a", "b": [2, 3]}), (None, None), ([], [])],
)
def test_stale_values_come_back_as_json_returns_them_in_memory_and_in_redis(any_store, fresh, stale):
    chain = chain_on(any_store)
    assert remember(chain, "a", fresh) == fresh  # the fresh value is the function's own
    assert after_outage(chain, "a") == stale
    assert type(after_outage(chain, "a")) is type(stale)


def test_a_stale_value_is_a_copy_the_caller_may_change(any_store):
    chain = chain_on(any_store)
    remember(chain, "a", {"items": [1]})
    after_outage(chain, "a")["items"].append("mutated")
    assert after_outage(chain, "a") == {"items": [1]}


UNSTORABLE = [{1, 2}, object(), {"when": datetime.date(2024, 1, 1)}, {(1, 2): "tuple key"}]


@pytest.mark.parametrize("unstorable", UNSTORABLE)
def test_a_value_json_cannot_hold_is_served_fresh_never_kept_stale_and_reported_once(any_store, unstorable):
    events = []
    chain = chain_on(any_store, events)
    for _ in range(3):
        assert remember(chain, "a", unstorable) is unstorable
    assert after_outage(chain, "a") == "default"
    reports = [e for e in events if e.kind == "not_storable"]
    assert len(reports) == 1 and reports[0].name == "json" and reports[0].fields["type"] == type(unstorable).__name__
