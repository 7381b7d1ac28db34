"""Entra ID through django-auth-adfs, against a fake provider over HTTPS that the tests take down."""

import json
import time
import uuid

import pytest
from django.conf import settings as django_settings
from django_auth_adfs.config import settings as adfs_settings
from rest_framework.test import APIClient

from resilience import breakers
from resilience.integrations.entra.backend import install
from tests.fake_idp import FakeIdP, SigningKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(tmp_path):
    provider = FakeIdP(tmp_path).start()
    yield provider
    provider.stop()


@pytest.fixture
def entra(settings, idp, key_prefix, monkeypatch):
    settings.ROOT_URLCONF = "tests.urls_entra"
    settings.AUTHENTICATION_BACKENDS = ["resilience.integrations.entra.ResilientAccessTokenBackend"]
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "ENTRA": {"retry_interval": 0.5, "kid_refresh_interval": 5},
        "BREAKERS": {"entra": {"minimum_calls": 2, "open_for": 0.5}},
        "RETRY": {"http": {"attempts": 2, "base": 0.01, "cap": 0.02, "budget": None}},
    }
    for name, value in {"SERVER": idp.server, "CA_BUNDLE": str(idp.ca_bundle), "TENANT_ID": idp.tenant, "TIMEOUT": 1}.items():
        monkeypatch.setattr(adfs_settings, name, value)
    return install()


def me(token, **headers):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    return client.get("/me/")


def test_a_valid_token_is_accepted(entra, idp):
    response = me(idp.token())
    assert response.status_code == 200 and response.json() == {"user": "alice@example.com"}


def test_provider_down_with_nothing_cached_is_a_503_never_a_500_never_authenticated(entra, idp):
    idp.stop()
    responses = [me(idp.token()) for _ in range(5)]
    assert [r.status_code for r in responses] == [503] * 5
    assert responses[0].json() == {"detail": "Authentication is temporarily unavailable. Try again shortly."}
    assert 1 <= int(responses[0]["Retry-After"]) <= 30


def test_valid_tokens_keep_working_from_cache_while_the_provider_is_down(entra, idp, monkeypatch):
    token = idp.token()
    assert me(token).status_code == 200
    idp.stop()
    monkeypatch.setattr(adfs_settings, "CONFIG_RELOAD_INTERVAL", 0)  # every request would want fresh metadata
    assert [me(token).status_code for _ in range(10)] == [200] * 10


@pytest.mark.parametrize("case", ["expired", "forged", "wrong_audience", "wrong_issuer", "not_a_jwt"])
def test_bad_tokens_are_still_refused_while_the_provider_is_down(entra, idp, case):
    assert me(idp.token()).status_code == 200  # keys cached
    idp.stop()
    token = {
        "expired": lambda: idp.token(ttl=-600),
        "forged": lambda: idp.token(key=SigningKey()),
        "wrong_audience": lambda: idp.token(aud="someone-else"),
        "wrong_issuer": lambda: idp.token(iss="https://login.example.com/other-tenant/v2.0"),
        "not_a_jwt": lambda: "abc.def.ghi",
    }[case]()
    assert me(token).status_code == 401


def test_the_provider_sees_a_bounded_number_of_fetches_during_an_outage(entra, idp, monkeypatch):
    token = idp.token()
    assert me(token).status_code == 200
    idp.failing = True
    monkeypatch.setattr(adfs_settings, "CONFIG_RELOAD_INTERVAL", 0)
    started = time.monotonic()
    codes = [me(token).status_code for _ in range(60)]
    elapsed = time.monotonic() - started
    assert codes == [200] * 60
    # one fetch (of at most 2 attempts) per retry_interval (0.5 s), not one per request
    assert idp.fetches.get("failed", 0) <= 2 * (1 + int(elapsed / 0.5))


def test_another_worker_without_a_cache_uses_the_keys_shared_through_redis(entra, idp):
    token = idp.token()
    assert me(token).status_code == 200
    idp.stop()
    install()  # a new worker: empty process cache
    assert me(token).status_code == 200


def test_a_rotated_key_is_picked_up_with_one_refresh(entra, idp):
    assert me(idp.token()).status_code == 200
    before = idp.fetches["keys"]
    new = idp.rotate()
    assert me(idp.token(key=new)).status_code == 200
    assert idp.fetches["keys"] == before + 1


def test_unknown_key_ids_trigger_at_most_one_refresh_per_interval(entra, idp):
    assert me(idp.token()).status_code == 200
    before = idp.fetches["keys"]
    for _ in range(20):
        forged = SigningKey()
        forged.kid = uuid.uuid4().hex[:16]
        assert me(idp.token(key=forged)).status_code == 401
    assert idp.fetches["keys"] - before <= 1


def test_a_tokens_key_id_reaches_the_log_only_as_a_digest(entra, idp, caplog):
    """Found by a README audit: the kid of an unverified token (client input) was an event field."""
    import logging

    forged = SigningKey()
    forged.kid = "attacker-chosen-text-" + uuid.uuid4().hex[:8]
    with caplog.at_level(logging.INFO, logger="resilience"):
        assert me(idp.token(key=forged)).status_code == 401
    lines = [r.getMessage() for r in caplog.records]
    assert any("unknown_kid_refresh" in line and "kid_sha256=" in line for line in lines)
    assert not any("attacker-chosen-text" in line for line in lines)


def test_a_slow_provider_is_cut_off_by_the_request_deadline(entra, idp, settings):
    settings.MIDDLEWARE = ["resilience.middleware.ResilienceMiddleware"]
    settings.RESILIENCE = {**settings.RESILIENCE, "ROUTES": [{"path": "*", "timeout": 0.5}]}
    install()
    idp.delay = 3.0
    started = time.monotonic()
    response = me(idp.token())
    assert response.status_code == 503 and time.monotonic() - started < 1.5


def test_password_logins_never_wait_on_the_identity_provider(entra, idp, settings):
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    settings.AUTHENTICATION_BACKENDS = [
        "resilience.integrations.entra.ResilientAccessTokenBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    User.objects.create_user("bob", password="pw")
    idp.delay = 3.0
    started = time.monotonic()
    assert authenticate(username="bob", password="pw") == User.objects.get(username="bob")
    assert time.monotonic() - started < 0.5


def test_the_breaker_opens_on_repeated_fetch_failures(entra, idp):
    idp.stop()
    for _ in range(3):
        me(idp.token())
        time.sleep(0.55)
    assert breakers.get("entra").view().trips == 3  # opened by the first failures, re-opened by each failed probe


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer a b", "Bearer not.a.jwt", "Bearer " + "x" * 10_000, "Bearer \u00e9\u00e9",
])  # fmt: skip
def test_every_refusal_is_the_same_generic_401(entra, idp, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or missing credentials."}
    assert response["WWW-Authenticate"] == 'Bearer realm="api" token_type="JWT"'


@pytest.mark.django_db(transaction=True)  # autocommit, as a request without ATOMIC_REQUESTS runs
@pytest.mark.parametrize("upn", [["a@example.com", "b@example.com"], "u" * 5_000 + "@example.com"])
def test_a_signed_token_whose_claims_make_no_user_is_the_same_401_never_a_500(entra, idp, upn):
    """Found by a fresh-project trial: django-auth-adfs's user creation raised ValidationError (a list)
    and DataError (longer than the 150-character username) out of authenticate(): a 500."""
    response = me(idp.token(upn=upn))
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid or missing credentials."})
    assert me(idp.token()).status_code == 200  # the next request's transaction is clean


def test_an_inactive_user_gets_the_same_answer_as_a_bad_token(entra, idp):
    from django.contrib.auth.models import User

    assert me(idp.token()).status_code == 200
    User.objects.filter(username="alice@example.com").update(is_active=False)
    inactive, forged = me(idp.token()), me(idp.token(aud="other"))
    assert (
        (inactive.status_code, inactive.json())
        == (forged.status_code, forged.json())
        == (401, {"detail": "Invalid or missing credentials."})
    )


def test_guests_from_another_tenant_are_refused_when_blocked(entra, idp, monkeypatch):
    monkeypatch.setattr(adfs_settings, "BLOCK_GUEST_USERS", True)
    assert me(idp.token()).status_code == 200
    assert me(idp.token(tid="99999999-0000-0000-0000-000000000000")).status_code == 401


def test_the_tenant_of_an_authenticated_request_is_exposed_for_the_resolver(entra, idp, settings):
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from resilience.integrations.entra.backend import ResilientAccessTokenAuthentication
    from resilience.tenancy import tenant_of

    class Tenant(APIView):
        authentication_classes = [ResilientAccessTokenAuthentication]

        def get(self, request):
            return Response({"tenant": tenant_of(request)})

    import sys
    import types

    module = types.ModuleType("tests._urls_tenant")
    module.urlpatterns = [path("tenant/", Tenant.as_view())]
    sys.modules["tests._urls_tenant"] = module
    settings.ROOT_URLCONF = "tests._urls_tenant"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {idp.token()}")
    assert client.get("/tenant/").json() == {"tenant": idp.tenant}


def test_a_passing_provider_hiccup_is_retried_within_the_same_fetch(entra, idp):
    idp.fail_next = 1  # the first metadata request gets a 503
    assert me(idp.token()).status_code == 200
    assert idp.fetches["failed"] == 1 and idp.fetches["metadata"] == 1  # the retry succeeded


def test_session_logins_keep_the_tenant_for_the_resolver():
    from django.contrib.auth import login
    from django.contrib.auth.models import User
    from django.test import RequestFactory
    from django_auth_adfs.signals import post_authenticate

    from resilience.tenancy import tenant_of

    request = RequestFactory().get("/")
    from django.contrib.sessions.backends.db import SessionStore

    request.session = SessionStore()
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()  # as AuthenticationMiddleware leaves it before the login
    user = User.objects.create_user("sso-user")
    post_authenticate.send(sender=None, user=user, claims={"tid": "tenant-from-sso", "upn": "x"}, adfs_response=None)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    assert request.session["adfs_claims"] == {"tid": "tenant-from-sso"}
    assert tenant_of(request) == "tenant-from-sso"


# -- the shared copy in Redis is hostile input ----------------------------------------------------
def shared_copies(test_redis, key_prefix):
    """The shared key/metadata copies, as anyone with access to the shared Redis sees them (SCAN)."""
    return [k for k in test_redis.scan_iter(f"{key_prefix}:entra:*") if not k.endswith((b":lock", b":kid-refresh"))]


def plant(test_redis, key_prefix, value):
    """Overwrite every shared copy with ``value`` and hold the kid-refresh claim: no TTL, as an attacker would."""
    copies = shared_copies(test_redis, key_prefix)
    assert copies, "a legitimate login shares a copy first"
    for key in copies:
        test_redis.set(key, value)
        test_redis.set(key + b":kid-refresh", "1")


def forged_copy(idp, attacker, fetched_at):
    """The attacker's own RSA key dressed as the provider's, in the shape the shared copy has."""
    return json.dumps({
        "openid": {"issuer": idp.issuer, "token_endpoint": f"https://{idp.server}/{idp.tenant}/oauth2/v2.0/token"},
        "certificates": {attacker.kid: attacker.jwk()["x5c"][0]},
        "fetched_at": fetched_at,
    })  # fmt: skip


@pytest.mark.parametrize("worker", ["running", "restarted", "restarted_while_the_provider_is_down"])
def test_a_forged_shared_copy_never_lets_the_attackers_token_impersonate_a_superuser(entra, idp, test_redis, key_prefix, worker):
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin@example.com", "admin@example.com", "pw")
    assert me(idp.token(upn="admin@example.com")).status_code == 200  # the real admin; the real copy is shared
    attacker = SigningKey()
    plant(test_redis, key_prefix, forged_copy(idp, attacker, fetched_at=time.time() + 10 * 365 * 86_400))
    expected = 401
    if worker != "running":
        if worker == "restarted_while_the_provider_is_down":
            idp.stop()
            expected = 503  # nothing verified is left: fail closed
        install()  # a new worker: empty process cache, only what Redis holds
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {idp.token(key=attacker, upn='admin@example.com')}")
    answer = client.get("/me/")
    assert (answer.status_code, answer.json()) == (expected, {"detail": {
        401: "Invalid or missing credentials.", 503: "Authentication is temporarily unavailable. Try again shortly."
    }[expected]})  # fmt: skip
    if worker == "restarted":  # the provider was asked, and its own keys still work
        assert me(idp.token(upn="admin@example.com")).json() == {"user": "admin@example.com"}


@pytest.mark.parametrize("value", [
    b"\xff\xfe\x00garbage", b"not json", b"[]", b'{"fetched_at": "soon"}', b"x" * 100_000,
    b'{"openid": {}, "certificates": {"k": "not base64"}, "fetched_at": 1e300}',
])  # fmt: skip
@pytest.mark.parametrize("provider_up", [True, False])
def test_garbage_at_the_shared_key_is_absent_never_a_500(entra, idp, test_redis, key_prefix, value, provider_up):
    token = idp.token()
    assert me(token).status_code == 200
    plant(test_redis, key_prefix, value)
    if not provider_up:
        idp.stop()
    install()  # a new worker reads the shared copy first
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/me/").status_code == (200 if provider_up else 503)


def test_an_unsigned_copy_from_an_older_version_is_absent(entra, idp, test_redis, key_prefix):
    token = idp.token()
    assert me(token).status_code == 200
    genuine = forged_copy(idp, idp.keys[0], fetched_at=time.time())  # the provider's real key, but unsigned
    plant(test_redis, key_prefix, genuine)
    idp.stop()
    install()
    assert me(token).status_code == 503


@pytest.mark.parametrize(("ahead", "adopted"), [(30, True), (3600, False)])
def test_a_signed_copy_dated_in_the_future_is_refused_beyond_the_clock_skew(entra, idp, test_redis, ahead, adopted):
    from resilience.storage.signing import seal

    assert me(idp.token()).status_code == 200
    copy = json.loads(forged_copy(idp, idp.keys[0], fetched_at=time.time() + ahead))  # a worker whose clock runs ahead
    test_redis.set(entra.shared_key, seal(copy, entra.shared_purpose))
    before = idp.fetches["metadata"]
    install()
    assert me(idp.token()).status_code == 200
    assert (idp.fetches["metadata"] == before) is adopted  # refused: the new worker asked the provider itself


def test_two_applications_in_one_tenant_keep_their_own_keys(entra, idp, test_redis, key_prefix, monkeypatch):
    own = {"api-client": SigningKey(), "other-app": SigningKey()}  # app-specific signing keys (appid=…)
    idp.app_keys = {app: [key] for app, key in own.items()}

    def worker(app):  # a new worker of that application, on the same Redis and key prefix
        monkeypatch.setattr(adfs_settings, "CLIENT_ID", app)
        monkeypatch.setattr(adfs_settings, "AUDIENCE", app)
        install()
        return me(idp.token(key=own[app], aud=app)).status_code

    assert [worker("api-client"), worker("other-app")] == [200, 200]
    idp.stop()  # each new worker now has only its application's shared copy
    assert [worker("api-client"), worker("other-app")] == [200, 200]
    keys = shared_copies(test_redis, key_prefix)
    assert len(keys) == 2 and not any(b"api-client" in k or b"other-app" in k for k in keys)  # one each, hashed


def test_refusals_and_outage_answers_are_not_logged_again_per_request_by_django(entra, idp, settings, caplog):
    """A token spray: the library's summarised auth event is the log line, not one django.request
    WARNING per 401 (the outage's 503 goes the same way)."""
    import logging

    settings.MIDDLEWARE = ["resilience.middleware.ResilienceMiddleware"]
    install()
    with caplog.at_level(logging.INFO):
        refused = [me("not.a.jwt").status_code for _ in range(20)]
    assert refused == [401] * 20
    assert [r for r in caplog.records if r.name == "django.request"] == []
    assert sum(r.getMessage().startswith("auth refused") for r in caplog.records) == 1  # the first; the rest folded
