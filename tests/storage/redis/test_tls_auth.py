"""Every shared feature over TLS with credentials, against the suite's own TLS redis-server (``tls_redis``
in tests/conftest.py: TLS only, ``requirepass`` and an ACL user, certificates made by the test): the
three setting forms, FastScript's own connections, breakers across processes, budgets, stale values,
locks; and each policy's fail mode when the password is wrong."""

from __future__ import annotations

import logging
import multiprocessing
import ssl
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet
from redis.backoff import NoBackoff
from redis.connection import SSLConnection
from redis.retry import Retry

from resilience.integrations.aws.settings import parse_credentials
from resilience.integrations.aws.shared_credentials import SharedCopy
from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import policy
from resilience.storage import retry_budget, stale_store
from resilience.storage.redis.client import connect, shared_client
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.conftest import TlsRedisServer
from tests.storage import workers
from tests.storage.redis.leaks import assert_no_secret, said
from tests.storage.redis.scenarios import assert_rate_limit_fail_mode, assert_stores_fall_back_locally

NO_RETRY = Retry(NoBackoff(), 0)  # redis-py's default retries a refused handshake for seconds

SPAWN = multiprocessing.get_context("spawn")
FORMS = ("token_url", "acl_user_url", "cache_alias")
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "resilience.middleware.ResilienceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


def redis_setting(form: str, server: TlsRedisServer, settings: Any) -> tuple[str, str]:
    """``RESILIENCE["REDIS"]`` in one of the documented forms, and the user it logs in as."""
    if form == "token_url":
        return server.token_url(), "default"
    if form == "acl_user_url":
        return server.user_url(), server.USER
    settings.CACHES = {
        **settings.CACHES,
        "tls": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"rediss://127.0.0.1:{server.port}/0",
            "OPTIONS": {"PASSWORD": server.token, "CONNECTION_POOL_KWARGS": {"ssl_ca_certs": str(server.certificates.ca)}},
        },
    }
    return "tls", "default"


@pytest.fixture(params=FORMS)
def over_tls(request: Any, settings: Any, tls_redis: TlsRedisServer, key_prefix: str) -> str:
    """Settings whose ``REDIS`` is the TLS server in one form; the user Redis should see."""
    target, user = redis_setting(request.param, tls_redis, settings)
    settings.RESILIENCE = {"REDIS": target, "KEY_PREFIX": key_prefix, "SYNC_INTERVAL": 0.2, "HISTORY": False}
    return user


def server_side_user(server: TlsRedisServer, connection: Any) -> str:
    """The user Redis reports for ``connection`` (CLIENT LIST, matched by the connection's local port)."""
    local = f"127.0.0.1:{connection._sock.getsockname()[1]}"
    entries = [c for c in server.client().client_list() if c["addr"] == local]
    assert len(entries) == 1, entries
    return str(entries[0]["user"])


def test_the_test_server_speaks_only_tls(tls_redis: TlsRedisServer) -> None:
    assert tls_redis.client().config_get("port") == {"port": "0"}  # no plain listener at all
    with pytest.raises(redis.ConnectionError):  # plain RESP on the TLS port is refused
        redis.Redis(port=tls_redis.port, password=tls_redis.token, socket_timeout=0.5, retry=NO_RETRY).ping()
    with pytest.raises(redis.AuthenticationError):  # TLS without the credentials is refused
        ca = str(tls_redis.certificates.ca)
        redis.Redis(port=tls_redis.port, ssl=True, ssl_ca_certs=ca, socket_timeout=1, retry=NO_RETRY).set("k", 1)


def test_each_setting_form_connects_over_verified_tls_with_its_credentials(over_tls: str, tls_redis: TlsRedisServer) -> None:
    client = shared_client()
    assert client is not None
    pool = client.connection_pool
    assert issubclass(pool.connection_class, SSLConnection)
    assert client.acl_whoami() == over_tls
    connection = pool.get_connection()
    try:
        assert isinstance(connection._sock, ssl.SSLSocket)
        assert connection._sock.version() in ("TLSv1.2", "TLSv1.3")
        assert connection.cert_reqs == ssl.CERT_REQUIRED and connection.check_hostname  # redis-py's defaults, kept
        assert server_side_user(tls_redis, connection) == over_tls
    finally:
        pool.release(connection)


def test_hostname_checking_refuses_a_certificate_for_another_host(tmp_path: Any) -> None:
    elsewhere = TlsRedisServer(tmp_path, hosts=("redis.example.internal",))
    try:  # killed even if it never answers
        elsewhere.start()
        with pytest.raises(redis.ConnectionError):
            connect(elsewhere.token_url(), 1.0).ping()
    finally:
        elsewhere.kill()


def test_a_server_whose_ca_is_not_given_is_refused(tls_redis: TlsRedisServer) -> None:
    without_ca = f"rediss://:{tls_redis.token}@127.0.0.1:{tls_redis.port}/0"  # the system's CAs: not the test's
    with pytest.raises(redis.ConnectionError):
        connect(without_ca, 1.0).ping()


def test_a_rate_limit_decision_runs_through_fastscripts_own_tls_connection(
    over_tls: str, tls_redis: TlsRedisServer, key_prefix: str
) -> None:
    client = shared_client()
    assert client is not None
    store = RedisRateLimitStore(client)
    try:
        limiter = Limiter(store)
        rule = policy("ip", {"rate": "2/min", "fail": "closed"}, "x")
        answers = [limiter.hit([(rule, "198.51.100.7")], key_prefix).allowed for _ in range(3)]
        assert answers == [True, True, False]  # decided in Redis: "closed" would have refused the first
        fast = store._script
        assert fast._factory is not None  # the hand-packed path, not redis-py's evalsha
        (connection,) = fast._idle  # FastScript's own connection, opened by its factory
        assert isinstance(connection, SSLConnection) and isinstance(connection._sock, ssl.SSLSocket)
        assert server_side_user(tls_redis, connection) == over_tls
    finally:
        store.close()


def test_retry_budget_stale_values_and_the_credentials_lock_work_over_tls(
    over_tls: str, tls_redis: TlsRedisServer, key_prefix: str
) -> None:
    budget = retry_budget("tls-budget", ratio=0.1, floor=0.0, window=10)
    for _ in range(10):
        budget.record_call()
    assert [budget.try_retry(), budget.try_retry()] == [True, False]  # 10 % of 10 calls, shared
    assert budget.healthy
    assert list(tls_redis.client().scan_iter(f"{key_prefix}:retry-budget:*"))

    stale = stale_store()
    assert stale.set("tls-group", "k", 1_700_000_000.0, {"v": 1}, ttl=60, max_keys=10)
    assert stale.get("tls-group", "k") == (1_700_000_000.0, {"v": 1})

    client = shared_client()
    config = parse_credentials(
        {
            "role_arn": "arn:aws:iam::123456789012:role/tls",
            "region": "eu-west-1",
            "encryption_key": Fernet.generate_key().decode(),
        },
        'RESILIENCE["AWS"]["CREDENTIALS"]',
    )
    first, second = SharedCopy(client, key_prefix, config), SharedCopy(client, key_prefix, config)
    token = first.claim(5.0)
    assert token  # claimed in Redis ("" would mean Redis could not be asked)
    assert second.claim(5.0) is None  # held
    first.release(token)
    assert second.claim(5.0)  # released through lock_release.lua


def test_breaker_state_is_shared_between_processes_over_tls(settings: Any, tls_redis: TlsRedisServer, key_prefix: str) -> None:
    settings.RESILIENCE = {
        "REDIS": tls_redis.user_url(), "KEY_PREFIX": key_prefix, "SYNC_INTERVAL": 0.5, "HISTORY": False,
        "BREAKERS": {"shared": {"minimum_calls": 3, "open_for": 60}},
    }  # fmt: skip
    reports = workers.rejection_delays(settings.RESILIENCE, 2)
    assert [r[0] for r in reports] == ["rejected", "rejected"]
    delays = [r[2] for r in reports]
    print(f"TLS: rejection delays after open in 2 other processes: {[round(d, 4) for d in delays]}")
    assert max(delays) < 1.0, delays  # the change notice (pub/sub over TLS) reached them


# -- a wrong password: each policy's fail mode, no 500, no hang, no secret in what is said ----------
WRONG = "S3cr3t-wrong-password-0f9e8d"


@pytest.fixture
def wrong_password(settings: Any, tls_redis: TlsRedisServer, key_prefix: str) -> TlsRedisServer:
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {
        "REDIS": tls_redis.user_url(password=WRONG), "REDIS_TIMEOUT": 0.5, "KEY_PREFIX": key_prefix,
        "SYNC_INTERVAL": 0.2, "HISTORY": False, "BREAKERS": {"dep": {"minimum_calls": 2, "open_for": 60}},
    }  # fmt: skip
    return tls_redis


@pytest.mark.parametrize(("fail", "expected"), [("open", [200] * 4), ("closed", [429] * 4), ("local", [200, 200, 429, 429])])
def test_a_wrong_password_applies_each_rate_limit_fail_mode_without_a_500(
    wrong_password: TlsRedisServer, settings: Any, caplog: Any, events: list[Any], fail: str, expected: list[int]
) -> None:
    assert_rate_limit_fail_mode(settings, caplog, fail, expected)
    text = said(caplog.records, events)
    assert "AuthenticationError" in text  # the outage is reported, by the error's type
    assert_no_secret(text, wrong_password, WRONG, wrong_password.user_url(password=WRONG))


def test_a_wrong_password_leaves_breakers_budgets_and_stale_values_to_their_fallbacks(
    wrong_password: TlsRedisServer, caplog: Any, events: list[Any]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="resilience"), caplog.at_level(logging.DEBUG, logger="redis"):
        assert_stores_fall_back_locally(events)
    unavailable = {e.name: e.fields.get("error") for e in events if e.kind == "store_unavailable"}
    assert unavailable.get("breaker") == unavailable.get("retry_budget") == "AuthenticationError", unavailable
    assert_no_secret(said(caplog.records, events), wrong_password, WRONG, wrong_password.user_url(password=WRONG))
