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
from resilience.fallbacks.degrade import degradable
from resilience.models import CircuitEvent
from tests.waiting import wait_for


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
    from resilience.storage.redis.breaker import RedisBreakerStore

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


def manage(*args, prefix=None, code=None):
    """``manage.py`` (or ``python -c code``) in a subprocess on the test database, with LOGNAME and
    friends claiming to be someone else; with ``prefix``, on the test's Redis under that key prefix."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TEST_PG_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.settings_command",
        "TEST_PG_NAME": connection.settings_dict["NAME"],
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        **dict.fromkeys(("LOGNAME", "USER", "LNAME", "USERNAME"), "ceo"),
        **({"TEST_KEY_PREFIX": prefix} if prefix else {}),
    }
    root = Path(__file__).resolve().parents[1]
    argv = ["-c", "import django; django.setup()\n" + code] if code else ["manage.py", *args]
    return subprocess.run([sys.executable, *argv], cwd=root, env=env, capture_output=True, text=True, timeout=60)


def listed(result):
    """``breakers list`` output as {name: row}."""
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line and not line.startswith("(")}


@pytest.mark.django_db(transaction=True)
def test_the_actor_is_the_process_user_whatever_logname_and_user_say():
    result = manage("breakers", "open", "entra")
    assert result.returncode == 0, result.stderr
    assert list(CircuitEvent.objects.values_list("breaker", "new_state", "actor")) == [
        ("entra", "forced_open", f"manage.py:{pwd.getpwuid(os.geteuid()).pw_name}")
    ]


# -- every declared or configured breaker, from every process ----------------------------------
DECLARE = {
    "degradable": (
        "from resilience.fallbacks.degrade import degradable\ndegradable('search box', breaker='search', default=[])(len)"
    ),
    "template tag": (
        "from django.template import Template\n"
        'Template(\'{% load resilience %}{% degradable "box" breaker="search" %}x{% enddegradable %}\')'
    ),
    "drf view": (
        "from rest_framework.views import APIView\nfrom resilience.fallbacks.degrade import DegradableViewMixin\n"
        "class Search(DegradableViewMixin, APIView):\n    degrade_when = ['search']"
    ),
    "circuit_breaker": "from resilience import circuit_breaker\ncircuit_breaker('search')(len)",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", list(DECLARE))
def test_a_breaker_another_process_only_declared_is_listed_and_opened_by_the_command(shared_breakers, key_prefix, how):
    declared = manage(prefix=key_prefix, code=DECLARE[how])  # defines it, never calls it, exits
    assert declared.returncode == 0, declared.stderr

    rows = listed(manage("breakers", "list", prefix=key_prefix))
    assert rows["search"][1:] == ["closed", "0.0%", "0.0%", "0", "-"]
    opened = manage("breakers", "open", "search", prefix=key_prefix)
    assert opened.returncode == 0, opened.stderr
    assert "forced search open until reset" in opened.stdout
    assert "this process only" not in opened.stderr  # with Redis it acts everywhere
    assert shared_breakers.get("search").state == "forced_open"  # and this process sees it
    assert listed(manage("breakers", "list", prefix=key_prefix))["search"][1] == "forced_open"


@pytest.mark.django_db(transaction=True)
def test_configured_but_unused_breakers_are_listed_and_opened_by_the_command(shared_breakers, key_prefix):
    rows = listed(manage("breakers", "list", prefix=key_prefix))
    assert rows["entra"][1] == "closed"  # tests/settings_command.py configures it; nothing uses it
    assert manage("breakers", "open", "entra", prefix=key_prefix).returncode == 0
    shared_breakers.store.refresh({"entra"})
    assert shared_breakers.get("entra").state == "forced_open"


def test_a_degradable_breaker_is_listed_before_any_call(configured):
    @degradable("recommendations", breaker="recs", default=[])
    def recommendations():
        return ["a"]

    rows = {line.split()[0]: line.split() for line in run("list").splitlines()[1:]}
    assert rows["recs"][1] == "closed"
    assert "forced recs open" in run("open", "recs")
    assert recommendations() == []


@pytest.mark.django_db(transaction=True)
def test_opening_a_name_no_process_declared_is_refused_unless_create_is_given(shared_breakers, key_prefix):
    refused = manage("breakers", "open", "serach", prefix=key_prefix)  # a typo
    assert refused.returncode == 1
    assert "unknown circuit breaker 'serach'" in refused.stderr and "--create" in refused.stderr
    assert "serach" not in shared_breakers.names()

    created = manage("breakers", "open", "--create", "new-dependency", prefix=key_prefix)
    assert created.returncode == 0, created.stderr
    assert "forced new-dependency open until reset" in created.stdout
    assert shared_breakers.get("new-dependency").state == "forced_open"
    assert listed(manage("breakers", "list", prefix=key_prefix))["new-dependency"][1] == "forced_open"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["line\nbreak", "x" * 300, ""])
def test_create_still_refuses_names_no_breaker_may_have(shared_breakers, key_prefix, name):
    result = manage("breakers", "open", "--create", name, prefix=key_prefix)
    assert result.returncode == 1
    assert "a breaker name must be 1-200 printable characters" in result.stderr and "Traceback" not in result.stderr
    assert name not in shared_breakers.names()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", [("list",), ("open", "entra"), ("reset", "entra"), ("reset", "--all")])
def test_without_redis_the_command_says_it_acts_on_its_own_process_only(args):
    result = manage("breakers", *args)
    assert result.returncode == 0, result.stderr
    assert "RESILIENCE['REDIS'] is not set" in result.stderr and "this process only" in result.stderr
    assert "no running worker" in result.stderr
    if args == ("list",):
        assert result.stdout.splitlines()[-1] == "(in-process state: this process only; set RESILIENCE['REDIS'] to share it)"


@pytest.mark.django_db(transaction=True)
def test_with_redis_the_command_does_not_warn(shared_breakers, key_prefix):
    result = manage("breakers", "list", prefix=key_prefix)
    assert result.returncode == 0 and result.stderr == ""
    assert "this process only" not in result.stdout


def test_list_shows_an_open_breaker_whose_open_period_elapsed_as_open_with_its_probe_due(settings, shared_breakers):
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {"flaky": {"minimum_calls": 1, "open_for": 0.05}}}
    breaker = breakers.get_or_create("flaky")
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert wait_for(lambda: breakers.store.now() >= breaker.view().open_until)
    row = {line.split()[0]: line.split() for line in run("list").splitlines()[1:]}["flaky"]
    assert row[1] == "open" and row[-1] == "due"  # not "half_open" and "0.0s": nothing probes until a call comes
    assert breaker.view().state.value == "open"


def _fail():
    raise ConnectionError("down")
