import asyncio

import pytest

from resilience.core.fallback import FallbackChain, FallbackPolicy
from resilience.exceptions import ConfigurationError
from resilience.storage.memory.stale import MemoryStaleStore


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def chain(policy, scope="t:a", clock=None):
    events = []
    c = FallbackChain(policy, store=MemoryStaleStore(), scope_key=lambda s: scope, emit=events.append, clock=clock or Clock())
    return c, events


def fail(*args, **kwargs):
    raise ConnectionError("down")


def test_alternatives_are_tried_in_order_with_the_callers_arguments():
    seen = []

    def second(x, *, y):
        seen.append((x, y))
        return "second"

    c, events = chain(FallbackPolicy("f", alternatives=(fail, second)))
    assert c.call(fail, 1, y=2) == "second"
    assert seen == [(1, 2)]
    assert [(e.kind, e.fields["step"]) for e in events] == [("alternative", 2)]


def test_the_default_comes_last_and_is_an_event():
    c, events = chain(FallbackPolicy("f", alternatives=(fail,), default=[]))
    assert c.call(fail) == []
    assert events[-1].kind == "default"


def test_without_a_default_the_last_error_is_raised():
    c, _ = chain(FallbackPolicy("f"))
    with pytest.raises(ConnectionError):
        c.call(fail)


def test_errors_outside_on_are_not_swallowed():
    c, _ = chain(FallbackPolicy("f", default=0, on=(ConnectionError,)))

    def bug():
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        c.call(bug)


def test_a_stale_value_is_served_while_fresh_enough():
    clock = Clock()
    c, events = chain(FallbackPolicy("f", stale_for=60, default="default"), clock=clock)
    assert c.call(lambda: "fresh") == "fresh"
    clock.now += 59
    assert c.call(fail) == "fresh" and events[-1].kind == "stale"
    clock.now += 2
    assert c.call(fail) == "default"


def test_no_stale_values_when_the_scope_is_unknown():
    c, _ = chain(FallbackPolicy("f", stale_for=60, default="default"), scope=None)
    assert c.call(lambda: "secret") == "secret"
    assert c.call(fail) == "default"


def test_async_chains():
    async def afail():
        raise TimeoutError

    async def alt():
        return "alt"

    c, _ = chain(FallbackPolicy("f", alternatives=(alt,)))
    assert asyncio.run(c.acall(afail)) == "alt"


def test_an_async_chain_uses_a_plain_alternatives_answer():
    """Found by a README audit: awaiting the plain value raised TypeError, caught by ``on``: the
    alternative ran and its answer was thrown away for the default."""

    async def afail():
        raise TimeoutError

    def plain():
        return "plain"

    c, events = chain(FallbackPolicy("f", alternatives=(plain,), default="DEFAULT"))
    assert asyncio.run(c.acall(afail)) == "plain"
    assert not [e for e in events if e.kind == "default"]


def test_an_async_alternative_of_a_plain_function_is_a_clear_error_not_a_coroutine_answer():
    async def alt():
        return "alt"

    c, _ = chain(FallbackPolicy("f", alternatives=(alt,), default="DEFAULT"))
    with pytest.raises(ConfigurationError, match="is async; the function it stands in for is not"):
        c.call(fail)


@pytest.mark.parametrize("bad", [{"scope": "everyone"}, {"stale_for": -1}, {"stale_for": "1h"}])
def test_malformed_policies_are_refused(bad):
    with pytest.raises(ConfigurationError, match="fallback 'f'"):
        FallbackPolicy("f", **bad)
