"""Shared role credentials: moto as STS (server mode), real Redis, botocore's own refresh machinery.

Lifetimes are judged by an injected clock (``Refresher(clock=...)``): moto's credentials live
``duration`` seconds of real time, and the tests move through the advisory and mandatory windows
by moving the clock, never by sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.checks import run_checks
from moto.sts.models import sts_backends

from resilience.conf import resilience_settings
from resilience.integrations.aws.credentials import CredentialsUnavailable, Refresher, credentials, refresh
from resilience.integrations.aws.shared_credentials import SharedCopy
from resilience.integrations.aws.shared_session import role_session

ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parents[3]
KEY = Fernet.generate_key().decode()


class Clock:
    """Epoch seconds that tests move by hand (the real time at first)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def assumed(role_arn: str) -> list[Any]:
    """moto's record of the AssumeRole calls for ``role_arn`` (the server runs in this process)."""
    return [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == role_arn]


def credentials_settings(endpoint: str, role_arn: str, **overrides: Any) -> dict[str, Any]:
    return {"role_arn": role_arn, "region": "eu-west-1", "sts_endpoint_url": endpoint, "encryption_key": KEY, **overrides}


@pytest.fixture
def role_arn() -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/app-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def base_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the STS client signs with (the default chain: the environment here); never the role's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "base-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def configure(settings: Any, key_prefix: str, base_credentials: None) -> Any:
    """``configure(endpoint, role_arn, **credential_overrides)``: shared state in the real Redis."""

    def apply(endpoint: str, role_arn: str, **overrides: Any) -> dict[str, Any]:
        settings.RESILIENCE = {
            "HISTORY": False,
            "REDIS": django_settings.TEST_REDIS_URL,
            "KEY_PREFIX": key_prefix,
            "RETRY": {"aws": {"backoff": "exponential", "base": 0.001, "cap": 0.01, "attempts": 2, "budget": None}},
            "AWS": {"CREDENTIALS": credentials_settings(endpoint, role_arn, **overrides)},
        }
        return settings.RESILIENCE  # type: ignore[no-any-return]

    return apply


def copy_of(role_arn: str) -> SharedCopy:
    from resilience.storage.redis.client import shared_client

    return SharedCopy(shared_client(), resilience_settings.KEY_PREFIX, resilience_settings.AWS["CREDENTIALS"])


# -- single flight --------------------------------------------------------------------------------
def test_threads_refreshing_at_once_make_one_assume_role(configure: Any, moto_url: str, role_arn: str, events: list[Any]) -> None:
    configure(moto_url, role_arn)
    refresher = Refresher(resilience_settings.AWS["CREDENTIALS"])
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        outcomes.append(refresher.refresh(force=True))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(assumed(role_arn)) == 1
    assert sorted(outcomes) == ["busy"] * 7 + ["refreshed"]
    assert [e.fields["by"] for e in events if e.kind == "credentials_refreshed"] == ["celery"]


def test_two_processes_refreshing_at_once_make_one_assume_role(
    configure: Any, moto_url: str, role_arn: str, key_prefix: str, test_redis: Any
) -> None:
    overrides = configure(moto_url, role_arn)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_live", "LIVE_OVERRIDES": json.dumps({"RESILIENCE": overrides})}
    barrier = f"{key_prefix}:test-barrier"  # both interpreters import first, then refresh at the same instant
    script = (
        "import sys, time, redis, django; django.setup()\n"
        "from django.conf import settings\n"
        "from resilience.integrations.aws.credentials import refresh\n"
        "r = redis.Redis.from_url(settings.TEST_REDIS_URL); r.incr(sys.argv[1]); r.expire(sys.argv[1], 60)\n"
        "while int(r.get(sys.argv[1])) < 2: time.sleep(0.005)\n"
        "print(refresh(force=True))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, barrier], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs == ["busy", "refreshed"]
    assert len(assumed(role_arn)) == 1


def test_a_fresh_shared_copy_is_not_refreshed_again(configure: Any, moto_url: str, role_arn: str, events: list[Any]) -> None:
    configure(moto_url, role_arn)
    assert refresh() == "refreshed"
    assert refresh() == "fresh"
    assert len(assumed(role_arn)) == 1
    fresh = [e for e in events if e.kind == "credentials_fresh"]
    assert fresh and 3500 <= fresh[0].fields["expires_in"] <= 3600


def test_the_remaining_lifetime_is_a_gauge(configure: Any, settings: Any, moto_url: str, role_arn: str) -> None:
    from resilience.observability.metrics import InMemorySink

    overrides = configure(moto_url, role_arn)
    settings.RESILIENCE = {**overrides, "METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySink"]}}
    refresh()
    sink = InMemorySink.last
    assert sink is not None
    assert 3590 <= (sink.level("resilience.aws.credentials_expires_in", name=role_arn) or 0) <= 3600
    assert sink.value("resilience.aws.credentials_refreshed", name=role_arn) == 1


# -- encrypted at rest ----------------------------------------------------------------------------
def test_the_shared_copy_is_encrypted_and_lives_as_long_as_the_credentials(
    configure: Any, moto_url: str, role_arn: str, test_redis: Any
) -> None:
    configure(moto_url, role_arn, duration=1800, refresh_margin=600, schedule=60)
    refresh()
    (role,) = assumed(role_arn)
    copy = copy_of(role_arn)
    raw = test_redis.get(copy.key)
    for secret in (role.access_key_id, role.secret_access_key, role.session_token):
        assert secret.encode() not in raw
    assert 1790 <= test_redis.ttl(copy.key) <= 1800
    assert copy.read().access_key == role.access_key_id


def test_a_copy_under_another_key_is_treated_as_missing_and_refreshed(
    configure: Any, settings: Any, moto_url: str, role_arn: str, events: list[Any]
) -> None:
    configure(moto_url, role_arn)
    refresh()
    configure(moto_url, role_arn, encryption_key=Fernet.generate_key().decode())  # the key was rotated
    assert refresh() == "refreshed"
    assert len(assumed(role_arn)) == 2
    assert [e.kind for e in events if e.kind == "credentials_unreadable"] == ["credentials_unreadable"]


def test_a_planted_value_is_absent(configure: Any, moto_url: str, role_arn: str, test_redis: Any) -> None:
    configure(moto_url, role_arn)
    copy = copy_of(role_arn)
    test_redis.set(copy.key, b'{"AccessKeyId": "planted"}', ex=60)
    assert copy.read() is None


# -- the web side ---------------------------------------------------------------------------------
def test_without_celery_a_worker_refreshes_by_itself_once(
    configure: Any, moto_url: str, role_arn: str, events: list[Any]
) -> None:
    configure(moto_url, role_arn)
    first = credentials()
    session = role_session(region_name="eu-west-1")
    client = session.client("sts", endpoint_url=moto_url)
    identity = client.get_caller_identity()
    assert identity["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_arn.rsplit('/', 1)[1]}/")
    assert credentials() is first
    role_session().client("sts", region_name="eu-west-1", endpoint_url=moto_url).get_caller_identity()
    assert len(assumed(role_arn)) == 1
    assert [e.fields["by"] for e in events if e.kind == "credentials_refreshed"] == ["worker"]


def test_a_worker_uses_the_shared_copy_without_calling_sts(configure: Any, moto_url: str, role_arn: str) -> None:
    configure(moto_url, role_arn)
    refresh()
    (role,) = assumed(role_arn)
    frozen = credentials().get_frozen_credentials()
    assert frozen.access_key == role.access_key_id
    assert len(assumed(role_arn)) == 1


def test_in_the_advisory_window_the_worker_waits_for_celery_then_refreshes_in_the_mandatory_one(
    configure: Any, moto_url: str, role_arn: str, events: list[Any]
) -> None:
    configure(moto_url, role_arn)
    clock = Clock()
    refresher = Refresher(resilience_settings.AWS["CREDENTIALS"], clock=clock, monotonic=clock)
    creds = refresher.credentials()  # refreshed by the worker: no copy yet
    first = creds.get_frozen_credentials().access_key
    clock.now += 3600 - 800  # 800 s left: botocore's advisory window (refresh_margin 900), not the mandatory one
    assert creds.get_frozen_credentials().access_key == first
    assert len(assumed(role_arn)) == 1
    assert [e.fields["expires_in"] for e in events if e.kind == "credentials_expiring"] == [800]
    clock.now += 300  # 500 s left: mandatory
    assert creds.get_frozen_credentials().access_key != first
    assert len(assumed(role_arn)) == 2


def test_sts_down_keeps_the_current_credentials_until_they_expire(
    configure: Any, outage: Any, role_arn: str, events: list[Any]
) -> None:
    configure(f"http://127.0.0.1:{outage.port}", role_arn)
    clock = Clock()
    refresher = Refresher(resilience_settings.AWS["CREDENTIALS"], clock=clock, monotonic=clock)
    creds = refresher.credentials()
    first = creds.get_frozen_credentials().access_key
    outage.refuse()
    clock.now += 3600 - 300  # mandatory window: the worker tries STS, which is down
    assert creds.get_frozen_credentials().access_key == first
    failed = [e for e in events if e.kind == "credentials_refresh_failed"]
    # the proxy closes every connection it accepts
    [(error, expires_in)] = [(e.fields["error"], e.fields["expires_in"]) for e in failed]
    assert error == "ConnectionClosedError"
    assert 290 <= expires_in <= 305  # about 300: STS gives whole seconds of the real clock, this one is injected
    clock.now += 10  # within RETRY_INTERVAL: no new attempt, same credentials, no new event
    assert creds.get_frozen_credentials().access_key == first
    assert len([e for e in events if e.kind == "credentials_refresh_failed"]) == 1
    clock.now += 300  # expired (another attempt first: RETRY_INTERVAL has passed)
    with pytest.raises(CredentialsUnavailable):
        creds.get_frozen_credentials()


# -- no secret anywhere ---------------------------------------------------------------------------
def test_no_secret_reaches_a_log_line_an_event_or_a_repr(
    configure: Any, moto_url: str, role_arn: str, events: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    configure(moto_url, role_arn)
    refresh()
    credentials().get_frozen_credentials()
    Refresher(resilience_settings.AWS["CREDENTIALS"]).refresh(force=True)
    roles = assumed(role_arn)
    assert len(roles) == 2
    secrets = [s for r in roles for s in (r.access_key_id, r.secret_access_key, r.session_token)] + [KEY]
    seen = caplog.text + "".join(repr(e) for e in events) + repr(resilience_settings.AWS)
    seen += repr(copy_of(role_arn).read())
    for secret in secrets:
        assert secret not in seen
    assert "credentials_refreshed" in caplog.text


# -- system checks --------------------------------------------------------------------------------
BEAT = {"refresh": {"task": "resilience.tasks.refresh_aws_credentials", "schedule": 300.0, "options": {"expires": 300.0}}}


def credential_check_ids() -> list[str]:
    ids = ("resilience.E015", "resilience.E016", "resilience.E017", "resilience.W012", "resilience.W013")
    return sorted(m.id for m in run_checks() if m.id in ids)


def test_good_settings_pass_the_credential_checks(configure: Any, settings: Any, role_arn: str, monkeypatch: Any) -> None:
    settings.CELERY_BEAT_SCHEDULE = BEAT
    configure("http://127.0.0.1:1", role_arn)
    assert credential_check_ids() == []
    monkeypatch.setenv("TEST_RESILIENCE_AWS_KEY", KEY)
    configure("http://127.0.0.1:1", role_arn, encryption_key="env:TEST_RESILIENCE_AWS_KEY")
    assert credential_check_ids() == []


@pytest.mark.parametrize("key", [None, "env:TEST_RESILIENCE_UNSET_VARIABLE", "not-a-fernet-key"])
def test_a_missing_or_invalid_encryption_key_is_e015(configure: Any, settings: Any, role_arn: str, key: Any) -> None:
    settings.CELERY_BEAT_SCHEDULE = BEAT
    configure("http://127.0.0.1:1", role_arn, encryption_key=key)
    messages = [m for m in run_checks() if m.id == "resilience.E015"]
    assert len(messages) == 1
    assert "not-a-fernet-key" not in messages[0].msg


def test_the_redis_password_as_encryption_key_is_e015(configure: Any, settings: Any, role_arn: str) -> None:
    settings.CELERY_BEAT_SCHEDULE = BEAT
    configure("http://127.0.0.1:1", role_arn)
    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": f"redis://:{KEY}@127.0.0.1:6379/15"}
    assert credential_check_ids() == ["resilience.E015"]


@pytest.mark.parametrize("cache", [
    {"LOCATION": f"redis://:{KEY}@127.0.0.1:6379/15"},
    {"LOCATION": ["redis://127.0.0.1:6379/15"], "OPTIONS": {"PASSWORD": KEY}},
])  # fmt: skip
def test_the_redis_password_of_the_cache_alias_as_encryption_key_is_e015(
    configure: Any, settings: Any, role_arn: str, cache: dict[str, Any]
) -> None:
    """Before: E015 looked only at a REDIS URL, not at the django-redis cache REDIS names (the README's way)."""
    settings.CELERY_BEAT_SCHEDULE = BEAT
    configure("http://127.0.0.1:1", role_arn)
    settings.CACHES = {**settings.CACHES, "shared": {"BACKEND": "django_redis.cache.RedisCache", **cache}}
    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": "shared"}
    assert credential_check_ids() == ["resilience.E015"]


@pytest.mark.parametrize("every", [3000, __import__("datetime").timedelta(minutes=50)])
def test_a_beat_entry_slower_than_the_schedule_is_w013(configure: Any, settings: Any, role_arn: str, every: Any) -> None:
    """Before: a beat entry every 3,000 s with the settings' schedule at 300 s passed the checks (the trial)."""
    settings.CELERY_BEAT_SCHEDULE = {"creds": {"task": "resilience.tasks.refresh_aws_credentials", "schedule": every}}
    configure("http://127.0.0.1:1", role_arn)
    assert credential_check_ids() == ["resilience.W013"]


@pytest.mark.parametrize(
    "entry",
    [
        {"schedule": 0.0, "options": {"expires": 0.0}},  # what beat_entry(0) returned before it refused
        {"schedule": -5},
        {"schedule": "60"},
        {"schedule": 60.0, "options": {"expires": -1}},
    ],
)
def test_a_beat_entry_that_would_never_refresh_is_e017(configure: Any, settings: Any, role_arn: str, entry: Any) -> None:
    """Before: beat_entry(0), a negative schedule or a string passed every check (the second trial)."""
    settings.CELERY_BEAT_SCHEDULE = {"creds": {"task": "resilience.tasks.refresh_aws_credentials", **entry}}
    configure("http://127.0.0.1:1", role_arn)
    assert credential_check_ids() == ["resilience.E017"]


@pytest.mark.parametrize("bad", [0, -5, "abc", "60", True, float("inf"), float("nan"), None])
def test_beat_entry_refuses_anything_but_seconds_above_zero(bad: Any) -> None:
    from resilience.exceptions import ConfigurationError
    from resilience.tasks import beat_entry

    with pytest.raises(ConfigurationError, match=r"beat_entry\(schedule\) takes a number of seconds above 0"):
        beat_entry(bad)


def test_no_beat_entry_is_w012(configure: Any, settings: Any, role_arn: str) -> None:
    settings.CELERY_BEAT_SCHEDULE = {"other": {"task": "app.tasks.other", "schedule": 60.0}}
    configure("http://127.0.0.1:1", role_arn)
    assert credential_check_ids() == ["resilience.W012"]


def test_a_schedule_longer_than_duration_minus_margin_is_e016(configure: Any, settings: Any, role_arn: str) -> None:
    settings.CELERY_BEAT_SCHEDULE = BEAT
    configure("http://127.0.0.1:1", role_arn, duration=900, refresh_margin=600, schedule=301)
    assert credential_check_ids() == ["resilience.E016"]


def test_without_credentials_settings_no_credential_check_runs(settings: Any) -> None:
    settings.RESILIENCE = {"HISTORY": False, "AWS": {}}
    assert credential_check_ids() == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"region": "eu-west-1"}, 'RESILIENCE["AWS"]["CREDENTIALS"]["role_arn"] must be an IAM role ARN'),
        ({"role_arn": f"arn:aws:iam::{ACCOUNT}:role/x", "region": "Europe"}, '["region"] must be an AWS region name'),
        ({"role_arn": f"arn:aws:iam::{ACCOUNT}:role/x", "region": "eu-west-1", "duration": 60}, '["duration"] must be'),
        ({"role_arn": f"arn:aws:iam::{ACCOUNT}:role/x", "region": "eu-west-1", "sechedule": 60}, "sechedule"),
    ],
)
def test_a_malformed_credentials_entry_is_e001_naming_the_key(settings: Any, entry: dict[str, Any], message: str) -> None:
    settings.RESILIENCE = {"HISTORY": False, "AWS": {"CREDENTIALS": entry}}
    errors = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and message in errors[0]
