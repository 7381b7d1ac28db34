"""The public names: decorator, with, async with, registry lookups, hostile names."""

import asyncio

import pytest

from resilience import CircuitOpenError, ConfigurationError, UnknownBreakerError, breakers, circuit_breaker


@pytest.fixture
def quick(settings):
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {"default": {"minimum_calls": 2, "open_for": 30}}}


def _fail():
    raise ConnectionError


def test_decorator_with_and_async_with_share_one_named_breaker(quick):
    @circuit_breaker("api")
    def call():
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            call()
    with pytest.raises(CircuitOpenError):
        with circuit_breaker("api"):
            pass

    async def in_async():
        async with circuit_breaker("api"):
            pass

    with pytest.raises(CircuitOpenError):
        asyncio.run(in_async())
    assert breakers.get("api").state == "open"


def test_keyword_overrides_apply_on_top_of_settings(quick):
    breaker = circuit_breaker("over", open_for=5, failure_rate=90)
    assert (breaker.config.open_for, breaker.config.failure_rate, breaker.config.minimum_calls) == (5, 90, 2)


def test_ignore_takes_dotted_paths_as_a_keyword_as_it_does_in_settings(quick):
    """Found by a README audit: README says so; the keyword refused strings."""
    handle = circuit_breaker("dotted-ignore", ignore=["django.core.exceptions.PermissionDenied", KeyError])
    from django.core.exceptions import PermissionDenied

    for _ in range(3):
        with pytest.raises(PermissionDenied):
            handle.call(lambda: (_ for _ in ()).throw(PermissionDenied()))
    assert breakers.get("dotted-ignore").state == "closed"  # neither success nor failure
    with pytest.raises(ConfigurationError, match=r"circuit_breaker\('x-ignore'\)\[\"ignore\"\]"):
        circuit_breaker("x-ignore", ignore=["no.such.Error"]).call(lambda: 1)


def test_bad_keyword_override_is_a_clear_error(quick):
    with pytest.raises(ConfigurationError, match=r"circuit_breaker\('bad'\)\[\"failure_rate\"\] must be between 1 and 100"):
        circuit_breaker("bad", failure_rate=0).state  # noqa: B018


def test_reset_and_force_open_through_the_registry(quick):
    circuit_breaker("ops").call(lambda: None)
    breakers.get("ops").force_open()
    with pytest.raises(CircuitOpenError) as err:
        circuit_breaker("ops").call(lambda: None)
    assert err.value.retry_after is None
    breakers.get("ops").reset()
    assert circuit_breaker("ops").call(lambda: 7) == 7


def test_all_lists_configured_and_used_breakers_with_snapshots(settings):
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {"configured": {}}}
    circuit_breaker("used").call(lambda: None)
    snaps = {s.name: s for s in breakers.all()}
    assert set(snaps) == {"configured", "used"}
    assert snaps["used"].calls == 1 and snaps["used"].state == "closed"


@pytest.mark.parametrize("name", ["", "line\nbreak", "nul\x00", "x" * 201, 42, None, b"bytes"])
def test_invalid_breaker_names_are_refused_at_decoration(quick, name):
    with pytest.raises(ConfigurationError, match="a breaker name must be 1-200 printable characters"):
        circuit_breaker(name)


@pytest.mark.parametrize("name", ["a:b", "*", "{tag}", "ünïcødé ☃", "x" * 200])
def test_odd_but_printable_names_work(quick, name):
    breaker = circuit_breaker(name)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    assert breakers.get(name).state == "open"


@pytest.mark.parametrize("name", ["never-used", "x" * 10_000, "line\nbreak", 42, None])
def test_get_of_an_unknown_name_raises_unknown_breaker_and_creates_nothing(quick, name):
    with pytest.raises(UnknownBreakerError) as err:
        breakers.get(name)
    assert len(str(err.value)) < 120
    assert "never-used" not in breakers.names()


def test_invalid_names_planted_in_redis_do_not_break_listings(shared_breakers, test_redis, events):
    circuit_breaker("good").call(lambda: None)
    test_redis.sadd(f"{shared_breakers.store._prefix}:breakers", "bad\nname", b"\xff\xfe")
    assert [s.name for s in breakers.all()] == ["good", "\ufffd\ufffd"]  # undecodable bytes shown replaced
    assert "bad\nname" not in breakers.names()
    planted = {e.fields["value"] for e in events if (e.area, e.kind) == ("breaker", "invalid_shared_name")}
    assert planted == {"'bad\\nname'"}  # through the one event path, as a bounded repr
