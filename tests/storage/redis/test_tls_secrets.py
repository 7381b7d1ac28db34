"""No Redis password, token or URL with credentials in anything the library shows: ``manage.py check``,
``manage.py breakers list``, the admin Circuits page, ConfigurationError messages of malformed settings,
and the repr/str of the objects that hold the client; each output is grepped for the secrets of the
suite's TLS redis-server (``tls_redis``), which are distinctive (``S3cr3t-...``)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from resilience.breakers.registry import breakers
from resilience.exceptions import ConfigurationError
from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import policy
from resilience.storage import retry_budget, stale_store
from resilience.storage.redis.client import connect, redacted, shared_client
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.conftest import TlsRedisServer
from tests.storage.redis.leaks import assert_no_secret, right_or_wrong_secret, run
from tests.test_admin_browser import CHANGELIST, logged_in_client, staff_user

WRONG = "S3cr3t-wrong-7c1d"


@pytest.fixture
def on_tls(settings: Any, tls_redis: TlsRedisServer, key_prefix: str) -> TlsRedisServer:
    settings.RESILIENCE = {
        "REDIS": tls_redis.user_url(), "KEY_PREFIX": key_prefix, "HISTORY": False,
        "BREAKERS": {"payments": {"open_for": 60}, "search": {}},
    }  # fmt: skip
    return tls_redis


# -- what an operator sees -------------------------------------------------------------------------
@pytest.mark.parametrize("password", ["right", "wrong"])
def test_breakers_list_shows_no_secret(on_tls: TlsRedisServer, settings: Any, password: str) -> None:
    right_or_wrong_secret(password, settings, on_tls.user_url(password=WRONG))
    output = run("breakers", "list")
    assert "payments" in output
    assert_no_secret(output, on_tls, WRONG, on_tls.user_url(password=WRONG))


@pytest.mark.django_db
@pytest.mark.parametrize("password", ["right", "wrong"])
def test_the_admin_circuits_page_shows_no_secret(on_tls: TlsRedisServer, settings: Any, password: str) -> None:
    right_or_wrong_secret(password, settings, on_tls.user_url(password=WRONG))
    page = logged_in_client(staff_user("operator", "view_circuit", "change_circuit")).get(CHANGELIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "payments" in html
    assert_no_secret(html, on_tls, WRONG, on_tls.user_url(password=WRONG))


def test_manage_py_check_shows_no_secret_even_where_the_password_is_the_encryption_key(
    on_tls: TlsRedisServer, settings: Any
) -> None:
    """E015 finds the Redis password although the URL percent-encodes it, and does not print it."""
    key = Fernet.generate_key().decode()  # url-safe base64: "=" is percent-encoded in the URL below
    url = on_tls.user_url(password=key)
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "REDIS": url,
        "AWS": {"CREDENTIALS": {"role_arn": "arn:aws:iam::123456789012:role/tls", "region": "eu-west-1", "encryption_key": key}},
    }
    output = run("check")
    assert "resilience.E015" in output
    assert_no_secret(output, on_tls, key, url)
    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": on_tls.user_url(), "AWS": {}}
    assert_no_secret(run("check"), on_tls)


# -- malformed settings that hold credentials --------------------------------------------------------
def malformed(server: TlsRedisServer) -> dict[str, Any]:
    """Mistakes people make, each with a password in it."""
    raw_password_url = f"rediss://app:{server.user_password}@127.0.0.1:{server.port}/0"  # "/" and "@" unencoded
    return {
        "one slash after the scheme": f"rediss:/:{server.token}@127.0.0.1:{server.port}/0",
        "uppercase scheme": server.token_url().replace("rediss://", "REDISS://"),
        "password not percent-encoded": raw_password_url,
        "a dict": {"url": server.token_url()},
        "bytes": server.token_url().encode(),
    }


MISTAKES = ("one slash after the scheme", "uppercase scheme", "password not percent-encoded", "a dict", "bytes")


@pytest.mark.parametrize("mistake", MISTAKES)
def test_malformed_redis_settings_are_reported_without_their_password(
    on_tls: TlsRedisServer, settings: Any, mistake: str
) -> None:
    value = malformed(on_tls)[mistake]
    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": value}
    reported = [run("check"), run("breakers", "list")]
    if isinstance(value, str):
        with pytest.raises(ConfigurationError) as error:
            connect(value, 1.0)
        reported.append(str(error.value))
        assert error.value.__cause__ is None and error.value.__suppress_context__  # no chained message quotes it
    text = "\n".join(reported)
    assert 'RESILIENCE["REDIS"]' in text
    assert_no_secret(text, on_tls, on_tls.user_password.split("/")[0], repr(value))


def test_a_cache_whose_location_is_malformed_is_reported_without_its_password(on_tls: TlsRedisServer, settings: Any) -> None:
    location = f"rediss://app:{on_tls.user_password}@127.0.0.1:{on_tls.port}/0"
    settings.CACHES = {**settings.CACHES, "tls": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location}}
    with pytest.raises(ConfigurationError) as error:
        connect("tls", 1.0)
    assert "CACHES['tls'][\"LOCATION\"]" in str(error.value)
    assert_no_secret(str(error.value), on_tls, on_tls.user_password.split("/")[0])


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("rediss://app:pw@host:6380/0?ssl_ca_certs=/ca.pem", "rediss://***@host:6380/0?ssl_ca_certs=/ca.pem"),
        ("rediss://:tok/en@x@host:6380/0", "rediss://***@host:6380/0"),
        ("rediss:/:tok@host", "***@host"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("default", "default"),
    ],
)
def test_redacted_hides_everything_before_the_last_at_sign(setting: str, shown: str) -> None:
    assert redacted(setting) == shown


# -- objects that hold the client --------------------------------------------------------------------
def test_the_repr_and_str_of_objects_holding_the_client_show_no_secret(on_tls: TlsRedisServer) -> None:
    client = shared_client()
    assert client is not None
    rate_store = RedisRateLimitStore(client)
    try:
        Limiter(rate_store).hit([(policy("ip", "5/min", "x"), "198.51.100.4")], "tls-repr")
        breaker = breakers.get_or_create("payments")
        breaker.call(lambda: None)
        budget, stale = retry_budget("b", 0.1, 1.0, 10), stale_store()
        budget.try_retry()
        stale.get("g", "k")
        fast = rate_store._script
        objects = [client, client.connection_pool, breakers, breakers.store, breaker, rate_store, fast, budget, stale,
                   *fast._idle, *client.connection_pool._available_connections]  # fmt: skip
        text = "\n".join(f"{obj!r}\n{obj!s}" for obj in objects)
    finally:
        rate_store.close()
    assert "SSLConnection" in text
    assert_no_secret(text, on_tls)
