"""``RESILIENCE["REDIS"]`` as a user mistypes it: every URL that would give no client is
``resilience.E001`` at start-up and a ``ConfigurationError`` at first use, never a 500 from deep in
redis-py; a cache that cannot serve is E002/E003; and no message shows a password, wherever the
URL carried it (found by a fresh-project trial: an unencoded token in a cluster URL passed the
checks, then every request was a 500 and the logs quoted the token up to its ``/``)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks

from resilience.exceptions import ConfigurationError
from resilience.storage.redis.client import connect
from resilience.storage.redis.urls import is_url, redacted
from tests.test_conf_and_checks import urlconf_imported  # noqa: F401 - autouse: the checks read each test's settings

TOKEN = "Tr1al/To@k:en+Zq=7XyW3pLm"  # as an ElastiCache AUTH token may be: '/', '@', ':', '+', '='
PIECES = ("Tr1al", "To@k", "en+Zq", "7XyW3pLm")  # any part a parser might quote


def resilience_messages(settings, setting: str) -> list[str]:
    settings.RESILIENCE = {"REDIS": setting, "HISTORY": False}
    return [f"{m.id} {m.msg} {m.hint or ''}" for m in run_checks() if m.id.startswith("resilience.")]


def assert_no_token(text: str) -> None:
    assert not [piece for piece in PIECES if piece in text], text


BAD_URLS = [
    pytest.param(f"rediss+cluster://:{TOKEN}@127.0.0.1:41011,127.0.0.1:41012/0", id="cluster, token not encoded"),
    pytest.param(f"rediss://:{TOKEN}@127.0.0.1:6380/0", id="server, token not encoded"),
    pytest.param(f"redis+cluster://127.0.0.1/0?password={TOKEN}", id="cluster, token in the query, no port"),
    pytest.param(f"rediss://127.0.0.1:notaport/0?password={TOKEN}", id="server, token in the query, bad port"),
    pytest.param("redis+cluster://127.0.0.1:7000/0?socket_timeout=abc", id="cluster, a query value of the wrong type"),
    pytest.param("redis://127.0.0.1:6379/0?socket_timeout=abc", id="server, a query value of the wrong type"),
    pytest.param("redis://127.0.0.1:6379/abc", id="server, a database that is no number"),
    pytest.param("rediss://127.0.0.1:6380/0?ssl_cert_reqs=bogus", id="server, ssl_cert_reqs not a level"),
    pytest.param("rediss://127.0.0.1:6380/0?ssl_cert_reqs=REQUIRED", id="server, ssl_cert_reqs in capitals"),
    pytest.param("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", id="server, a TLS argument on a plain URL"),
    pytest.param("redis+cluster://127.0.0.1:7000/0?nonsense_arg=1", id="cluster, an argument redis-py does not take"),
    pytest.param(f"rediss+cluster://u:{TOKEN}@127.0.0.1:7000,u2:{TOKEN}@127.0.0.1:7001/0", id="cluster, credentials per node"),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_would_give_no_client_is_e001_without_the_password(settings, url):
    messages = resilience_messages(settings, url)
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"], messages
    assert 'RESILIENCE["REDIS"] must be' in messages[0]
    assert_no_token(messages[0])


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_would_give_no_client_is_a_configuration_error_at_first_use_without_the_password(url):
    with pytest.raises(ConfigurationError) as error:
        connect(url, 0.5)
    assert_no_token(str(error.value))
    assert error.value.__cause__ is None and error.value.__suppress_context__  # urllib's message is not chained


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://127.0.0.1:6379/",
        "redis://[::1]:6379/0",
        "unix:///tmp/redis.sock?db=1",
        "rediss://127.0.0.1:6380?ssl_cert_reqs=none&health_check_interval=10",
        "rediss+cluster://clustercfg.sessions.abc123.euw1.cache.amazonaws.com:6379",
        "redis+cluster://:pa,ss@127.0.0.1:7000,127.0.0.1:7001/0",  # a ',' in a password, no '@' after it
        f"rediss+cluster://:{quote(TOKEN, safe='')}@127.0.0.1:41011,127.0.0.1:41012/0",
    ],
)
def test_urls_users_write_pass_the_checks(settings, url):
    assert resilience_messages(settings, url) == []


def test_the_query_is_shown_up_to_its_first_secret_argument():
    plain = TOKEN.replace("@", "")
    shown = redacted(f"rediss://127.0.0.1:6380/0?ssl_ca_certs=/etc/ca.pem&password={plain}&db=0")
    assert shown == "rediss://127.0.0.1:6380/0?ssl_ca_certs=/etc/ca.pem&password=***"
    assert (
        redacted(f"rediss+cluster://app:{TOKEN}@node:6379/0?Auth_Token=x&y") == "rediss+cluster://***@node:6379/0?Auth_Token=***"
    )
    assert (
        redacted(f"rediss://127.0.0.1:6380/0?%70assword={plain}") == "rediss://127.0.0.1:6380/0?%70assword=***"
    )  # redis-py decodes it
    # an '@' after a secret argument: in its value, or in a password holding '?token=': all is hidden
    assert redacted(f"rediss://127.0.0.1:6380/0?password={TOKEN}") == "rediss://***"
    assert redacted("rediss://:pw?token=x@host:6380/0") == "rediss://***"


def test_a_value_that_is_neither_a_url_nor_a_cache_is_e002_and_not_echoed(settings):
    messages = resilience_messages(settings, TOKEN.replace("/", ""))  # a token pasted where the URL goes
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E002"]
    assert_no_token(messages[0])
    assert "'default'" in messages[0]  # what CACHES does define
    with pytest.raises(ConfigurationError) as error:
        connect(TOKEN.replace("/", ""), 0.5)
    assert_no_token(str(error.value))


def test_a_cache_whose_location_is_a_cluster_is_e003_and_refused_at_first_use(settings):
    settings.CACHES = {
        **django_settings.CACHES,
        "cluster": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/0"},
    }
    messages = resilience_messages(settings, "cluster")
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E003"]
    assert "django-redis has no cluster client" in messages[0] and "redis+cluster:// URL itself" in messages[0]
    with pytest.raises(ConfigurationError, match="django-redis has no cluster client"):
        connect("cluster", 0.5)


SERVER_BAD_URLS = [p for p in BAD_URLS if "cluster" not in p.values[0]]  # a cluster LOCATION is E003 (above)


@pytest.mark.parametrize("url", SERVER_BAD_URLS)
def test_a_cache_whose_location_would_give_no_client_is_e001_and_refused_at_first_use_without_the_password(settings, url):
    """Found by a fresh-project trial: ``REDIS: "default"`` with an unencoded password in the cache's
    ``LOCATION`` passed ``check``, then every request needing Redis answered 500."""
    settings.CACHES = {**django_settings.CACHES, "mistyped": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}}
    messages = resilience_messages(settings, "mistyped")
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"], messages
    assert "CACHES['mistyped'][\"LOCATION\"] is not a valid Redis URL" in messages[0]
    assert_no_token(messages[0])
    with pytest.raises(ConfigurationError) as error:
        connect("mistyped", 0.5)
    assert_no_token(str(error.value))


def test_a_cache_of_several_locations_is_checked_location_by_location(settings):
    good = "redis://127.0.0.1:6379/0"
    settings.CACHES = {
        **django_settings.CACHES,
        "replicas": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": [good, f"redis://:{TOKEN}@127.0.0.1:6380/0"]},
    }
    messages = resilience_messages(settings, "replicas")
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"], messages
    assert_no_token(messages[0])
    settings.CACHES = {
        **django_settings.CACHES,
        "replicas": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": f"{good},{good}"},
    }
    assert resilience_messages(settings, "replicas") == []


@pytest.mark.parametrize("url", ["REDIS://127.0.0.1:6379/0", f"Rediss+Cluster://:{TOKEN}@127.0.0.1:7000/0"])
def test_a_scheme_in_capitals_is_refused_as_a_url_e001_not_looked_up_as_a_cache(settings, url):
    assert is_url(url)
    messages = resilience_messages(settings, url)
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"] and "lower-case scheme" in messages[0]
    assert_no_token(messages[0])


def test_a_certificate_file_that_does_not_exist_is_e001_naming_it(settings, tmp_path):
    missing = tmp_path / "ca.pem"
    messages = resilience_messages(settings, f"rediss+cluster://127.0.0.1:7000/0?ssl_ca_certs={missing}")
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"]
    assert f"ssl_ca_certs={str(missing)!r}, which is not a file" in messages[0]
    from resilience.conf import resilience_settings

    assert resilience_settings.problems() == []  # a fact of this machine, not of the setting: the settings load
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resilience_messages(settings, f"rediss+cluster://127.0.0.1:7000/0?ssl_ca_certs={missing}") == []


@pytest.mark.parametrize("where", ["location", "pool"])
def test_a_missing_certificate_file_of_the_redis_cache_is_e001_naming_it(settings, tmp_path, where):
    """Found by a README audit: only a URL as REDIS was checked; a cache alias passed, then every
    Redis-backed feature fell back quietly at run time."""
    missing = tmp_path / "ca.pem"
    location = f"rediss://127.0.0.1:6380/0?ssl_ca_certs={missing}" if where == "location" else "rediss://127.0.0.1:6380/0"
    options = {} if where == "location" else {"CONNECTION_POOL_KWARGS": {"ssl_ca_certs": str(missing)}}
    settings.CACHES = {**settings.CACHES, "shared": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": location,
                                                     "OPTIONS": options}}  # fmt: skip
    messages = resilience_messages(settings, "shared")
    assert [m.split(" ", 1)[0] for m in messages] == ["resilience.E001"]
    assert f"ssl_ca_certs={str(missing)!r}, which is not a file" in messages[0] and "CACHES['shared']" in messages[0]
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resilience_messages(settings, "shared") == []


def test_a_password_given_in_the_query_is_known_to_e015_as_the_redis_password(settings):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    settings.RESILIENCE = {
        "REDIS": f"redis://127.0.0.1:6379/0?password={key}",
        "HISTORY": False,
        "AWS": {"CREDENTIALS": {"role_arn": "arn:aws:iam::123456789012:role/x", "region": "eu-west-1", "encryption_key": key}},
    }
    messages = [m for m in run_checks() if m.id == "resilience.E015"]
    assert len(messages) == 1 and key not in f"{messages[0].msg} {messages[0].hint}"
