"""Entra ID under concurrency: first requests racing in real threads (and in a real gunicorn), waits
bounded by the request deadline, and a fetch lock that only its holder releases. Real Redis, the
fake provider over HTTPS, counted from the provider's own log."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connections
from django_auth_adfs import backend as adfs_backend
from django_auth_adfs import config as adfs_config
from django_auth_adfs import views as adfs_views
from django_auth_adfs.config import ProviderConfig
from django_auth_adfs.config import settings as adfs_settings
from rest_framework.test import APIClient

from resilience.core.deadline import deadline
from resilience.exceptions import EntraUnavailable
from resilience.integrations.entra.backend import install
from tests.fake_idp import FakeIdP
from tests.live import LiveServer
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # threads and gunicorn workers see committed rows
METADATA, KEYS = "openid-configuration", "/keys"
USER = "alice@example.com"


@pytest.fixture
def idp(tmp_path):
    provider = FakeIdP(tmp_path).start()
    yield provider
    provider.stop()


def resilience(key_prefix, retry_interval=0.5, **extra):
    return {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "ENTRA": {"retry_interval": retry_interval, "kid_refresh_interval": 5},
        "BREAKERS": {"entra": {"minimum_calls": 2, "open_for": 0.5}},
        "RETRY": {"http": {"attempts": 2, "base": 0.01, "cap": 0.02, "budget": None}},
        **extra,
    }


def start_process(monkeypatch, test_redis=None, key_prefix=None):
    """As at a process's start: django-auth-adfs's own provider config installed (restored after the
    test), and with ``test_redis`` nothing shared yet under ``key_prefix``."""
    stock = ProviderConfig()
    for module in (adfs_config, adfs_backend, adfs_views):
        monkeypatch.setattr(module, "provider_config", stock)
    if test_redis is not None:
        for key in test_redis.scan_iter(f"{key_prefix}:entra:*"):
            test_redis.delete(key)


@pytest.fixture
def fresh_process(settings, idp, key_prefix, monkeypatch):
    """A process that has served no Entra request yet: django-auth-adfs's own provider config is
    still installed, as it is at start-up (restored after the test)."""
    from django.contrib.auth.models import User

    settings.ROOT_URLCONF = "tests.urls_entra_live"
    settings.AUTHENTICATION_BACKENDS = ["resilience.integrations.entra.ResilientAccessTokenBackend"]
    settings.RESILIENCE = resilience(key_prefix)
    for name, value in {"SERVER": idp.server, "CA_BUNDLE": str(idp.ca_bundle), "TIMEOUT": 5}.items():
        monkeypatch.setattr(adfs_settings, name, value)
    start_process(monkeypatch)
    User.objects.create_user(USER)  # the race is about the provider, not about creating the user
    return settings


def with_route_deadline(settings, seconds):
    settings.MIDDLEWARE = ["resilience.middleware.ResilienceMiddleware"]
    settings.RESILIENCE = {**settings.RESILIENCE, "ROUTES": [{"path": "*", "timeout": seconds}]}


def race(count, token):
    """``count`` requests to /me/ released at once from real threads: (status, body, seconds) each."""
    barrier = threading.Barrier(count)

    def one(_):
        client = APIClient(raise_request_exception=False)  # a 500 is an answer to count, not an exception
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        barrier.wait()
        started = time.monotonic()
        try:
            response = client.get("/me/")
            return response.status_code, response.json() if response.status_code != 500 else None, time.monotonic() - started
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def lock_key(key_prefix):
    from resilience.integrations.entra.provider import ResilientProviderConfig

    return ResilientProviderConfig(prefix=key_prefix).shared_key + ":lock"


# -- one provider config, one fetch --------------------------------------------------------------
ROUNDS = 4  # a race does not show every time: each round is a new process start


@pytest.mark.parametrize("count", [8, 50])
def test_concurrent_first_requests_build_one_provider_config_and_fetch_once(fresh_process, idp, count, monkeypatch,
                                                                            test_redis, key_prefix):  # fmt: skip
    """Before: racing first requests built several configs, the provider was asked several times, and
    a request whose config was replaced mid-way was a 500 (TypeError at signing_keys)."""
    idp.delay = 0.3  # a slow provider keeps every first request inside the race
    token = idp.token()
    for _ in range(ROUNDS):
        start_process(monkeypatch, test_redis, key_prefix)
        idp.log.clear()
        results = race(count, token)
        statuses = [status for status, _, _ in results]
        assert statuses.count(500) == 0
        assert statuses == [200] * count
        assert {body["provider"] for _, body, _ in results} == {id(adfs_backend.provider_config)}  # one config
        assert (idp.hits(METADATA), idp.hits(KEYS)) == (1, 1)  # one fetch for all of them


@pytest.mark.parametrize("count", [8, 50])
def test_racing_first_callers_get_one_provider_config(fresh_process, count, monkeypatch):
    """Before: each caller that saw django-auth-adfs's config installed one of its own (a third of
    the rounds of 8 built two or more, 100 rounds never passed)."""
    from resilience.integrations.entra.backend import provider

    for _ in range(100):
        start_process(monkeypatch)
        barrier = threading.Barrier(count)

        def first_call(_, barrier=barrier):
            barrier.wait()
            return provider()

        with ThreadPoolExecutor(count) as pool:
            configs = list(pool.map(first_call, range(count)))
        assert {id(config) for config in configs} == {id(adfs_backend.provider_config)}


# -- every wait bounded by the request deadline ----------------------------------------------------
@pytest.mark.parametrize("provider", ["down", "slow"])
def test_waiting_for_another_workers_fetch_ends_with_the_request_deadline(fresh_process, idp, test_redis, key_prefix, provider):
    """Another worker holds the fetch lock. Before: a 503 under a 0.5 s deadline took TIMEOUT (5 s)
    of waiting plus a fetch given the whole TIMEOUT again (11 s with a slow provider)."""
    with_route_deadline(fresh_process, 0.5)
    test_redis.set(lock_key(key_prefix), "another-worker", px=30_000)
    if provider == "down":
        idp.stop()
    else:
        idp.delay = 3.0
    ((status, _, seconds),) = race(1, idp.token())
    assert status == 503 and seconds < 0.8
    assert idp.hits() == 0  # no fetch started once the deadline had passed: none without the lock either


def test_threads_waiting_on_a_slow_fetch_in_their_process_answer_by_their_deadline(fresh_process, idp):
    with_route_deadline(fresh_process, 0.5)
    idp.delay = 3.0
    results = race(8, idp.token())
    assert {status for status, _, _ in results} == {503}
    assert max(seconds for _, _, seconds in results) < 0.8
    assert idp.hits(METADATA) == 1  # one refresh for the eight, cut by the deadline


def test_no_fetch_starts_once_the_deadline_has_passed(fresh_process, idp):
    config = install()
    with deadline(0.0), pytest.raises(EntraUnavailable):
        config.load_config()
    assert idp.hits() == 0  # before: the fetch got the whole TIMEOUT again ("bounded(...) or TIMEOUT")


def test_a_fetch_gets_no_more_time_than_the_deadline_leaves(fresh_process, idp):
    config = install()
    idp.delay = 3.0
    started = time.monotonic()
    with deadline(0.3), pytest.raises(EntraUnavailable):
        config.load_config()
    assert time.monotonic() - started < 0.6 and idp.hits() == 1


def test_with_stale_keys_at_hand_nobody_waits_for_a_refresh_in_flight(fresh_process, idp, monkeypatch):
    config = install()
    config.load_config()
    monkeypatch.setattr(adfs_settings, "CONFIG_RELOAD_INTERVAL", 0)  # what we have is stale: every request wants a refresh
    idp.delay = 1.0
    refreshing = threading.Thread(target=config.load_config)
    refreshing.start()
    assert wait_for(lambda: idp.hits(METADATA) == 2)
    started = time.monotonic()
    config.load_config()  # before: blocked on the process lock for the slow refresh
    assert time.monotonic() - started < 0.3 and config.signing_keys
    refreshing.join(10)


def test_a_failed_fetch_makes_the_other_workers_back_off_too(fresh_process, idp, test_redis, key_prefix):
    """Before: every worker fetched for itself after another's failure (one fetch per worker per interval)."""
    fresh_process.RESILIENCE = resilience(key_prefix, retry_interval=30)
    idp.failing = True
    first = install()
    with pytest.raises(EntraUnavailable):
        first.load_config()
    asked = idp.hits()
    assert asked >= 1 and test_redis.get(lock_key(key_prefix)) == b"failed"
    assert 25_000 < test_redis.pttl(lock_key(key_prefix)) <= 30_000  # the mark lasts retry_interval
    second = install()  # another worker, nothing cached
    started = time.monotonic()
    with pytest.raises(EntraUnavailable):
        second.load_config()
    assert time.monotonic() - started < 0.3 and idp.hits() == asked  # it answered at once, without asking


# -- the fetch lock belongs to its holder ---------------------------------------------------------
def test_a_worker_that_gave_up_waiting_leaves_the_holders_lock_in_place(fresh_process, idp, test_redis, key_prefix, monkeypatch):
    """Before: the waiter fetched after TIMEOUT regardless and then deleted the lock it never held."""
    monkeypatch.setattr(adfs_settings, "TIMEOUT", 0.3)
    key = lock_key(key_prefix)
    test_redis.set(key, "another-worker", px=30_000)
    config = install()
    with deadline(2.0), pytest.raises(EntraUnavailable):
        config.load_config()
    assert test_redis.get(key) == b"another-worker"


def test_a_fetch_that_outlived_its_lock_does_not_delete_the_next_owners_lock(fresh_process, idp, test_redis, key_prefix):
    key = lock_key(key_prefix)
    config = install()
    idp.delay = 0.5
    fetching = threading.Thread(target=config.load_config)
    fetching.start()
    assert wait_for(lambda: idp.hits(METADATA) == 1)
    owner = test_redis.get(key)
    assert owner not in (None, b"1")  # a token of its own, not a value every worker writes
    test_redis.set(key, "next-owner", px=30_000)  # as if its lock had expired and another worker had claimed it
    fetching.join(10)
    assert config.signing_keys and test_redis.get(key) == b"next-owner"


def test_the_holder_releases_its_own_lock_after_the_fetch(fresh_process, idp, test_redis, key_prefix):
    config = install()
    config.load_config()
    assert config.signing_keys and test_redis.get(lock_key(key_prefix)) is None


# -- the same in a real gunicorn with several workers ---------------------------------------------
def live_overrides(idp, key_prefix, **resilience_extra):
    return {
        "ROOT_URLCONF": "tests.urls_entra_live",
        "AUTHENTICATION_BACKENDS": ["resilience.integrations.entra.ResilientAccessTokenBackend"],
        "RESILIENCE": resilience(key_prefix, retry_interval=30, **resilience_extra),
        "AUTH_ADFS": {**django_settings.AUTH_ADFS, "TIMEOUT": 5},
        "ENTRA_FAKE_IDP": {"SERVER": idp.server, "CA_BUNDLE": str(idp.ca_bundle)},
    }


def live_race(url, count, token):
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        started = time.monotonic()
        response = requests.get(url + "/me/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return response.status_code, response.json() if response.status_code == 200 else None, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_first_requests_in_a_four_worker_gunicorn_fetch_once_and_never_500(idp, key_prefix):
    from django.contrib.auth.models import User

    User.objects.create_user(USER)
    idp.delay = 0.3
    with LiveServer(live_overrides(idp, key_prefix), workers=4, threads=4) as live:
        results = live_race(live.url, 50, idp.token())
        output = live.output()
    statuses = [status for status, _, _ in results]
    assert statuses.count(500) == 0, output[-3000:]
    assert statuses == [200] * 50
    configs = {}
    for _, body, _ in results:
        configs.setdefault(body["pid"], set()).add(body["provider"])
    assert all(len(ids) == 1 for ids in configs.values())  # one provider config per worker process
    assert (idp.hits(METADATA), idp.hits(KEYS)) == (1, 1)  # one fetch for every worker: the Redis lock and the shared copy


def test_a_slow_provider_under_a_half_second_deadline_in_gunicorn_is_a_prompt_503(idp, key_prefix):
    idp.delay = 3.0
    routes = [{"path": "*", "timeout": 0.5}]
    overrides = {**live_overrides(idp, key_prefix, ROUTES=routes), "MIDDLEWARE": ["resilience.middleware.ResilienceMiddleware"]}
    with LiveServer(overrides, workers=4, threads=4) as live:
        results = live_race(live.url, 16, idp.token())
        output = live.output()
    assert {status for status, _, _ in results} == {503}, output[-3000:]
    assert max(seconds for _, _, seconds in results) < 1.0
    assert idp.hits(METADATA) == 1  # one worker held the lock; the others waited for it, until their deadline
