"""resilience.throttling on real Redis: one round trip, exact counts, tenants, logins."""

import base64
import json
import threading
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

RATES = {
    "ip": "5/min",
    "tenant": "3/min",
    "search": "4/min",
    "login": "3/min",
    "login_username": "4/min",
    "login_global": "100/min",
}


@pytest.fixture
def drf(settings, key_prefix):
    settings.ROOT_URLCONF = "tests.urls_drf"
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": RATES}
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
    }


def token(tid):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'tid': tid, 'aud': 'api'})}.sig"


def test_ip_throttle_refuses_with_429_and_retry_after(drf):
    client = Client(REMOTE_ADDR="198.51.100.1")
    codes = [client.get("/api/ip/").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = client.get("/api/ip/")
    assert 1 <= int(refused["Retry-After"]) <= 12


def test_several_throttle_classes_cost_one_round_trip(settings, redis_server, key_prefix):
    settings.ROOT_URLCONF = "tests.urls_drf"
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": RATES}
    settings.RESILIENCE = {"HISTORY": False, "REDIS": redis_server.url, "KEY_PREFIX": key_prefix}
    user = User.objects.create_user("bob")
    client = APIClient(REMOTE_ADDR="198.51.100.2")
    client.force_authenticate(user, token=token("tenant-a"))
    client.get("/api/stacked/")  # scripts loaded, connections made
    probe = redis.Redis(port=redis_server.port)
    before = probe.info("commandstats")
    for _ in range(2):  # within every limit (tenant: 3/min, the warm-up included)
        assert client.get("/api/stacked/").status_code == 200
    after = probe.info("commandstats")
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after if k != "cmdstat_info"}
    sent = {k: v for k, v in calls.items() if v}
    assert sent.pop("cmdstat_evalsha") == 2  # three throttles, one script per request
    assert set(sent) <= {"cmdstat_get", "cmdstat_set", "cmdstat_time"}  # only what the script runs inside Redis


def test_tenant_limit_counts_per_tenant_and_a_refusal_consumes_nothing_else(drf):
    a = APIClient(REMOTE_ADDR="198.51.100.3")
    a.force_authenticate(User.objects.create_user("carol"), token=token("tenant-a"))
    b = APIClient(REMOTE_ADDR="198.51.100.4")
    b.force_authenticate(User.objects.create_user("erin"), token=token("tenant-b"))
    assert [a.get("/api/stacked/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [b.get("/api/stacked/").status_code for _ in range(3)] == [200] * 3  # another tenant, its own budget


@pytest.mark.parametrize("tid", ["a:b", "*", "{x}", "line\nbreak", "ünï", "x" * 128])
def test_hostile_tenant_ids_are_contained_in_their_own_hashed_bucket(drf, tid):
    user = User.objects.create_user("dave")
    client = APIClient(REMOTE_ADDR="198.51.100.5")
    client.force_authenticate(user, token=token(tid))
    codes = [client.get("/api/stacked/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # the tenant's 3/min, whatever its id looks like


def test_an_oversized_tenant_id_is_no_tenant_and_never_a_500(drf):
    client = APIClient(REMOTE_ADDR="198.51.100.8")
    client.force_authenticate(User.objects.create_user("frank"), token=token("x" * 10_000))
    codes = [client.get("/api/stacked/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]  # the tenant limit does not apply; the scoped 4/min does


def test_a_shadow_throttle_beside_an_enforced_one_reports_and_never_refuses(drf, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {**RATES, "ip": {"rate": "1/min", "shadow": True}}}
    a = APIClient(REMOTE_ADDR="198.51.100.5")
    a.force_authenticate(User.objects.create_user("frank"), token=token("tenant-s"))
    assert [a.get("/api/stacked/").status_code for _ in range(4)] == [200, 200, 200, 429]  # tenant: 3/min


def test_racing_threads_are_admitted_exactly_up_to_the_limit(drf):
    results, barrier = [], threading.Barrier(32)

    def worker():
        client = Client(REMOTE_ADDR="198.51.100.6")
        barrier.wait(10)
        results.extend(client.get("/api/ip/").status_code for _ in range(3))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(200) == 5 and results.count(429) == 91


def login(client, username, password="wrong"):
    return client.post("/api/login/", {"username": username, "password": password}, format="json")


def test_login_is_limited_per_address_before_the_password_is_checked(drf):
    client = APIClient(REMOTE_ADDR="198.51.100.7")
    assert [login(client, "alice").status_code for _ in range(4)] == [400, 400, 400, 429]
    assert login(client, "alice", "right").status_code == 429  # even the right password: the attempt is refused first


def test_login_is_limited_per_username_across_addresses_and_spellings(drf):
    spellings = ["victim", "VICTIM", "Victim", "ｖｉｃｔｉｍ", "victim "]  # fullwidth and trailing space fold too
    codes = [login(APIClient(REMOTE_ADDR=f"198.51.100.{20 + n}"), name).status_code for n, name in enumerate(spellings)]
    assert codes == [400, 400, 400, 400, 429]


def test_login_answers_are_identical_for_known_and_unknown_users(drf):
    known = login(APIClient(REMOTE_ADDR="198.51.100.40"), "alice")
    unknown = login(APIClient(REMOTE_ADDR="198.51.100.41"), "nobody-at-all")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())


def test_login_limits_refuse_to_fail_open(settings, drf):
    from resilience.exceptions import ConfigurationError
    from resilience.ratelimit.policies import policy
    from resilience.throttling import LoginRateThrottle

    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"login": {"rate": "3/min", "fail": "open"}}}
    with pytest.raises(ConfigurationError, match="never fail open"):
        LoginRateThrottle().policies(type("R", (), {"_request": Client().request().wsgi_request, "data": {}})(), None)
    assert policy("login", "3/min", "x", "local").fail == "local"


@pytest.mark.parametrize("scope", ["login", "login_username", "login_cooloff"])
def test_a_login_limit_set_to_fail_open_is_a_system_check_error_not_a_500_at_each_login(settings, drf, scope):
    """Found by a README audit: it passed every check, then every login request raised."""
    from django.core.checks import run_checks

    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {**RATES, scope: {"rate": "3/min", "fail": "open"}}}
    errors = [m.msg for m in run_checks() if m.id == "resilience.E012"]
    assert errors == [f'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["{scope}"]: login limits never fail open; '
                      'use "local" (default) or "closed"']  # fmt: skip
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {**RATES, scope: {"rate": "3/min", "fail": "closed"}}}
    assert [m for m in run_checks() if m.id == "resilience.E012"] == []


@pytest.fixture
def cooloff(drf, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"login": "100/min", "login_cooloff": "1/2s;burst=3"}}


def test_repeated_failures_of_one_pair_cool_off_progressively_and_only_that_pair(cooloff):
    User.objects.create_user("victim", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.60")
    codes = [login(attacker, "victim").status_code for _ in range(5)]
    assert codes == [400, 400, 400, 429, 429]  # burst=3: three failures, then the pair cools off
    assert int(login(attacker, "victim", "right")["Retry-After"]) == 2  # one interval; even the right password waits
    owner = APIClient(REMOTE_ADDR="198.51.100.61")  # the real user, elsewhere: not locked out by the attacker
    assert login(owner, "victim", "right").status_code == 200


def test_the_cool_off_doubles_with_each_further_failure(cooloff):
    from django.conf import settings as live

    from resilience.ratelimit.identity import client_address
    from resilience.ratelimit.limiter import limiter
    from resilience.throttling import _pair, cooloff_policy, login_failed

    request = Client(REMOTE_ADDR="198.51.100.62").request().wsgi_request
    pair = _pair("mallory", client_address(request))
    waits = []
    for _ in range(6):
        login_failed(request, "mallory")
        look = limiter().hit([(cooloff_policy(), pair)], live.RESILIENCE["KEY_PREFIX"])  # cost 0: only looks
        waits.append(round(look.retry_after))
    assert waits == [0, 0, 2, 6, 14, 30]  # after the 3rd failure one interval (2 s), then +4, +8, +16 s


def test_a_successful_login_clears_the_pairs_cool_off(cooloff):
    from resilience.throttling import login_failed

    User.objects.create_user("grace", password="right")
    client = APIClient(REMOTE_ADDR="198.51.100.63")
    request = Client(REMOTE_ADDR="198.51.100.63").request().wsgi_request
    for _ in range(2):
        login_failed(request, "grace")
    assert login(client, "grace", "right").status_code == 200  # still within the burst of 3
    for _ in range(2):
        login_failed(request, "grace")
    assert login(client, "grace", "right").status_code == 200  # the success above reset the count


def test_drf_429s_carry_the_ratelimit_headers_when_the_middleware_is_installed(drf, settings):
    settings.MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]
    client = Client(REMOTE_ADDR="198.51.100.70")
    for _ in range(5):
        client.get("/api/ip/")
    refused = client.get("/api/ip/")
    assert refused.status_code == 429
    assert refused["RateLimit-Policy"] == '"ip";q=5;w=60'
    assert refused["RateLimit"].startswith('"ip";r=0;t=')
    assert 1 <= int(refused["Retry-After"]) <= 12  # DRF's own, kept


# -- every policy counts in its own key space (the README's settings, verbatim) ----------------------
@pytest.mark.django_db(transaction=True)
def test_the_readmes_middleware_and_drf_ip_limits_each_admit_what_they_say(settings, key_prefix):
    """The README's settings: middleware "ip" 1000/min;burst=200 and DRF "ip" 100/min. They once shared
    a key, and one client was admitted 19 requests instead of 100."""
    from .readme import settings_from

    readme = settings_from("## Rate limiting")
    settings.ROOT_URLCONF = "tests.urls_drf"
    settings.MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]
    settings.REST_FRAMEWORK = readme["REST_FRAMEWORK"]
    settings.RESILIENCE = {
        **readme["RESILIENCE"], "HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix,
    }  # fmt: skip
    assert readme["RESILIENCE"]["RATE_LIMITS"]["ip"] == "1000/min;burst=200"
    assert readme["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]["ip"] == "100/min"

    def admitted_before_the_first_429(address, path, status):
        client, started = Client(REMOTE_ADDR=address), time.monotonic()
        for n in range(400):
            code = client.get(path).status_code
            if code == 429:
                return n, time.monotonic() - started
            assert code == status
        raise AssertionError("never refused")

    drf, took = admitted_before_the_first_429("198.51.100.90", "/api/ip/", 200)
    assert 100 <= drf <= 100 + took / 0.6 + 1  # DRF's 100/min: its burst of 100, plus what refilled meanwhile
    middleware, took = admitted_before_the_first_429("198.51.100.91", "/plain/", 404)
    assert 200 <= middleware <= 200 + took / 0.06 + 1  # the middleware's 1000/min;burst=200


# -- a typo never means "no limit" ----------------------------------------------------------------
def test_a_throttle_scope_without_a_rate_is_improperly_configured_as_in_drf(drf, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "5/min", "tenant": "5/min"}}  # the view's "search": missing
    with pytest.raises(ImproperlyConfigured, match="No default throttle rate set for 'search' scope"):
        Client(REMOTE_ADDR="198.51.100.92").get("/api/stacked/")


def test_a_scope_set_to_none_is_unthrottled_on_purpose(drf, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": None}}
    assert {Client(REMOTE_ADDR="198.51.100.93").get("/api/ip/").status_code for _ in range(20)} == {200}


def test_a_rate_attribute_on_a_throttle_class_is_used(drf):
    codes = [Client(REMOTE_ADDR="198.51.100.94").get("/api/class-rate/").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]  # ClassRate.rate = "2/min", whatever the settings say


def test_a_rate_of_zero_refuses_every_request(drf, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "0/min"}}
    refused = Client(REMOTE_ADDR="198.51.100.95").get("/api/ip/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) == 60


def test_a_missing_rate_is_a_system_check_error(drf, settings):
    from django.core.checks import run_checks

    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_CLASSES": ["resilience.throttling.TenantRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"ip": "5/min", "login": "5/min"},
    }
    errors = [m for m in run_checks() if m.id == "resilience.E013"]
    messages = " | ".join(m.msg for m in errors)
    assert "'tenant'" in messages  # DEFAULT_THROTTLE_CLASSES
    assert "'search'" in messages and "tests.urls_drf.Stacked" in messages  # a view's throttle_scope
    assert "'ip'" not in messages and "'login'" not in messages


def test_a_malformed_class_rate_is_a_system_check_error(drf, settings):
    from django.core.checks import run_checks

    from .urls_drf import ClassRateThrottle

    ClassRateThrottle.rate = "2/fortnight"
    try:
        errors = [m for m in run_checks() if m.id == "resilience.E013"]
    finally:
        ClassRateThrottle.rate = "2/min"
    assert any("ClassRateThrottle rate must be a rate like" in m.msg for m in errors), errors


# -- login limits count the identity the backend will see ---------------------------------------------
@pytest.fixture
def obtain_token(settings, key_prefix):
    settings.ROOT_URLCONF = "tests.urls_live"
    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_RATES": {"login": "1000/min", "login_pair": "5/15min", "login_cooloff": "1/min;burst=3"}
    }
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}


def obtain(client, username, password="wrong"):
    return client.post("/api-token-auth/", {"username": username, "password": password}, format="json")


def test_trailing_space_variants_of_a_username_share_its_limits_through_obtain_auth_token(obtain_token):
    User.objects.create_user("victim3", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.96")
    codes = [obtain(attacker, "victim3" + " " * n).status_code for n in range(40) for _ in range(5)]
    assert codes.count(400) <= 5 and codes.count(429) >= 195  # once 200 wrong passwords got through
    assert obtain(attacker, "victim3" + " " * 60, "right").status_code == 429


def test_a_json_number_username_is_counted_like_its_text(obtain_token):
    User.objects.create_user("12345", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.97")
    codes = [obtain(attacker, 12345).status_code for _ in range(100)]
    assert codes.count(400) <= 5 and codes.count(429) >= 95  # once 100 of 100 got through
    assert obtain(attacker, "12345", "right").status_code == 429  # the number and the text are one identity


@pytest.mark.parametrize("variant", ["ＶＩＣＴＩＭ4", "victim4\u200b", "\tVictim4 ", "vic\u00adtim4"])
def test_spelling_variants_share_the_limit_of_the_username(obtain_token, variant):
    User.objects.create_user("victim4", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.98")
    for _ in range(5):
        obtain(attacker, "victim4")
    assert obtain(attacker, variant).status_code == 429


def test_a_look_alike_of_another_script_is_another_user_and_gets_no_token(obtain_token):
    User.objects.create_user("victim5", password="right")
    assert obtain(APIClient(REMOTE_ADDR="198.51.100.99"), "vісtim5", "right").status_code == 400  # Cyrillic і, с


@pytest.mark.parametrize("username", [["victim6"], {"u": "victim6"}, True, "x" * 100_000, None])
def test_hostile_username_types_get_a_clean_answer(obtain_token, username):
    response = obtain(APIClient(REMOTE_ADDR="198.51.100.100"), username)
    assert response.status_code == 400


@pytest.mark.parametrize("throttle_class", ["IPRateThrottle", "TenantRateThrottle", "ScopedRateThrottle", "LoginRateThrottle"])
def test_throttles_honour_drfs_contract_of_being_called_without_a_view(drf, throttle_class):
    """DRF allows ``allow_request(request, None)``; IPRateThrottle raised AttributeError there."""
    from rest_framework.request import Request

    from resilience import throttling

    throttle = getattr(throttling, throttle_class)()
    request = Request(Client(REMOTE_ADDR="198.51.100.110").request().wsgi_request)
    assert throttle.allow_request(request, None) is True
    if throttle_class == "IPRateThrottle":
        for _ in range(4):
            throttle.allow_request(request, None)
        assert throttle.allow_request(request, None) is False and throttle.wait() > 0  # RATES["ip"] is 5/min


@pytest.mark.parametrize("padding", [" " * 5000, "\t" * 4096, " " * 4095, "\n \t" * 2000])
def test_a_username_padded_past_the_length_looked_at_is_still_the_username(obtain_token, padding):
    """DRF's CharField strips the padding, so the backend sees "victim7"; the limits must see it too
    (a 4,096-space prefix once made the identity empty and skipped every per-username limit)."""
    User.objects.create_user("victim7", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.111")
    codes = [obtain(attacker, padding + "victim7").status_code for _ in range(8)]
    assert codes.count(400) == 3 and codes[3:] == [429] * 5  # login_cooloff 1/min;burst=3: three tries, then a wait
    assert obtain(attacker, padding + "victim7", "right").status_code == 429


def test_a_username_of_invisible_characters_is_still_an_identity():
    from resilience.ratelimit.identity import INVISIBLE, identity_text

    assert identity_text("\u200b" * 5000) == identity_text("\u200d\u200b") == INVISIBLE


def test_a_throttle_class_with_its_own_rate_counts_in_its_own_keys(drf):
    """A subclass of IPRateThrottle with ``rate = "2/min"`` shared the "ip" scope's counter."""
    client = Client(REMOTE_ADDR="198.51.100.112")
    assert [client.get("/api/class-rate/").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/api/ip/").status_code for _ in range(6)] == [200] * 5 + [429]  # RATES["ip"]: all 5 left


RESOLVED = []


def counted_tenant(request):
    """A TENANT_RESOLVER that records each call."""
    RESOLVED.append(request)
    return "tenant-counted"


def test_rates_are_parsed_once_per_settings_change_and_the_tenant_once_per_request(drf, settings, monkeypatch):
    """Three throttles on a view: their policies come from a cache the settings change clears, and the
    tenant resolver runs once per request (each throttle's pairs are built once)."""
    from resilience.ratelimit import policies

    settings.RESILIENCE = {**settings.RESILIENCE, "TENANT_RESOLVER": "tests.test_throttling.counted_tenant"}
    parsed = []
    real = policies.parse_rate
    monkeypatch.setattr(policies, "parse_rate", lambda text, where: parsed.append(text) or real(text, where))
    client = APIClient(REMOTE_ADDR="198.51.100.120")
    client.force_authenticate(User.objects.create_user("heidi"))
    RESOLVED.clear()
    assert [client.get("/api/stacked/").status_code for _ in range(3)] == [200] * 3
    assert sorted(parsed) == ["3/min", "4/min", "5/min"]  # ip, tenant, search: once each, not per request
    assert len(RESOLVED) == 3  # one resolution per request
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "100/min", "tenant": None, "search": None}}
    assert [client.get("/api/stacked/").status_code for _ in range(3)] == [200] * 3  # tenant's 3/min is gone at once
    assert parsed[3:] == ["100/min"]
