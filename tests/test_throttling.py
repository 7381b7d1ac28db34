"""resilience.throttling on real Redis: one round trip, exact counts, tenants, logins."""

import base64
import json
import threading

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
    from resilience.limiter import policy
    from resilience.throttling import LoginRateThrottle

    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"login": {"rate": "3/min", "fail": "open"}}}
    with pytest.raises(ConfigurationError, match="never fail open"):
        LoginRateThrottle().policies(type("R", (), {"_request": Client().request().wsgi_request, "data": {}})(), None)
    assert policy("login", "3/min", "x", "local").fail == "local"


@pytest.fixture
def cooloff(drf, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"login": "100/min", "login_cooloff": "1/2s;burst=3"}}


def test_repeated_failures_of_one_pair_cool_off_progressively_and_only_that_pair(cooloff):
    User.objects.create_user("victim", password="right")
    attacker = APIClient(REMOTE_ADDR="198.51.100.60")
    codes = [login(attacker, "victim").status_code for _ in range(5)]
    assert codes == [400, 400, 400, 400, 429]  # 3 free failures, the 4th starts a cool-off
    assert 3 <= int(login(attacker, "victim", "right")["Retry-After"]) <= 5  # even the right password waits
    owner = APIClient(REMOTE_ADDR="198.51.100.61")  # the real user, elsewhere: not locked out by the attacker
    assert login(owner, "victim", "right").status_code == 200


def test_the_cool_off_doubles_with_each_further_failure(cooloff):
    from django.conf import settings as live

    from resilience.ratelimits import client, limiter
    from resilience.throttling import _pair, cooloff_policy, login_failed

    request = Client(REMOTE_ADDR="198.51.100.62").request().wsgi_request
    pair = _pair("mallory", client(request))
    waits = []
    for _ in range(6):
        login_failed(request, "mallory")
        look = limiter().hit([(cooloff_policy(), pair)], live.RESILIENCE["KEY_PREFIX"])  # cost 0: only looks
        waits.append(round(look.retry_after))
    assert waits == [0, 0, 0, 4, 12, 28]  # past the 3 free failures: waits of 4, then +8, then +16 s


def test_a_successful_login_clears_the_pairs_cool_off(cooloff):
    from resilience.throttling import login_failed

    User.objects.create_user("grace", password="right")
    client = APIClient(REMOTE_ADDR="198.51.100.63")
    request = Client(REMOTE_ADDR="198.51.100.63").request().wsgi_request
    for _ in range(3):
        login_failed(request, "grace")
    assert login(client, "grace", "right").status_code == 200  # still within the free failures
    for _ in range(3):
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
