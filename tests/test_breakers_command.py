"""``manage.py breakers``: readable table, actions everywhere, clear errors for bad names."""

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from resilience import breakers
from resilience.models import CircuitEvent


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command("breakers", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def configured(settings, shared_breakers):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "BREAKERS": {"payments": {"open_for": 60}, "search": {}},
    }
    return shared_breakers


def test_list_shows_configured_breakers_as_a_table(configured):
    breakers.get_or_create("payments").force_open()
    out = run("list").splitlines()
    assert out[0].split() == ["NAME", "STATE", "FAILURES", "SLOW", "CALLS", "NEXT", "PROBE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["payments"][1] == "forced_open" and rows["payments"][-2:] == ["on", "reset"]
    assert rows["search"][1:5] == ["closed", "0.0%", "0.0%", "0"]


def test_list_includes_breakers_used_by_other_processes(configured):
    from resilience.storage.redis import RedisBreakerStore

    other = RedisBreakerStore(breakers.store._client, prefix=configured.store._prefix)
    try:
        other.register("used-elsewhere")
        other.manual("used-elsewhere", "force_open")
    finally:
        other.close()
    rows = {line.split()[0]: line.split()[1] for line in run("list").splitlines()[1:]}
    assert rows["used-elsewhere"] == "forced_open"


def test_open_and_reset_act_on_the_shared_state(configured):
    assert "forced payments open" in run("open", "payments")
    assert breakers.get("payments").state == "forced_open"
    assert "reset payments: closed" in run("reset", "payments")
    assert breakers.get("payments").state == "closed"


def test_reset_all_closes_every_breaker(configured):
    breakers.get_or_create("payments").force_open()
    breakers.get_or_create("search").force_open()
    assert "reset 2 breaker(s)" in run("reset", "--all")
    assert {s.state for s in breakers.all()} == {"closed"}


@pytest.mark.parametrize("name", ["nope", "pay:*", "line\nbreak", "ünï", "x" * 10_000, ""])
def test_unknown_or_odd_names_are_a_clear_error_not_a_traceback(configured, name):
    with pytest.raises(CommandError) as err:
        run("reset", name)
    assert "unknown circuit breaker" in str(err.value) or "give a breaker NAME" in str(err.value)
    assert len(str(err.value)) < 200


def test_reset_without_a_name_asks_for_one(configured):
    with pytest.raises(CommandError, match="give a breaker NAME or --all"):
        run("reset")


def test_command_exits_non_zero_on_unknown_name(configured):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "breakers", "open", "no-such-breaker"],
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown circuit breaker 'no-such-breaker'" in result.stderr
    assert "Traceback" not in result.stderr


def manage(*args):
    """``manage.py`` in a subprocess on the test database, with LOGNAME and friends claiming to be someone else."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TEST_PG_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.settings_command",
        "TEST_PG_NAME": connection.settings_dict["NAME"],
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        **dict.fromkeys(("LOGNAME", "USER", "LNAME", "USERNAME"), "ceo"),
    }
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_the_actor_is_the_process_user_whatever_logname_and_user_say():
    result = manage("breakers", "open", "entra")
    assert result.returncode == 0, result.stderr
    assert list(CircuitEvent.objects.values_list("breaker", "new_state", "actor")) == [
        ("entra", "forced_open", f"manage.py:{pwd.getpwuid(os.geteuid()).pw_name}")
    ]
