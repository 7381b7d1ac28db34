"""Several real processes share one breaker through real Redis."""

import pytest
from django.conf import settings

from resilience import CircuitOpenError, circuit_breaker
from tests.storage import workers
from tests.waiting import wait_for


def config(prefix, **breakers):
    return {"REDIS": settings.TEST_REDIS_URL, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 0.5, "HISTORY": False, "BREAKERS": breakers}


def test_four_processes_reject_within_one_second_of_another_opening_the_breaker(settings, key_prefix):
    settings.RESILIENCE = config(key_prefix, shared={"minimum_calls": 3, "open_for": 60})
    reports = workers.rejection_delays(settings.RESILIENCE, 4)
    assert {r[0] for r in reports} == {"rejected"}
    assert len({r[1] for r in reports}) == 4
    delays = [r[2] for r in reports]
    print(f"rejection delays after open: {[round(d, 4) for d in delays]}")
    assert max(delays) < 1.0, delays


def test_sixteen_concurrent_callers_in_half_open_run_no_more_than_the_permitted_probes(settings, key_prefix):
    settings.RESILIENCE = config(key_prefix, probed={"minimum_calls": 1, "open_for": 0.5, "half_open_calls": 3})
    counter = f"{key_prefix}:probes-run"
    probes_run, outcomes = workers.half_open_outcomes(settings.RESILIENCE, settings.TEST_REDIS_URL, counter)
    print("outcomes", sorted(outcomes))
    assert probes_run == 3
    assert outcomes.count("probed") == 3
    assert outcomes.count("rejected:half_open") == 13
    assert wait_for(lambda: circuit_breaker("probed").state == "closed")


def _fail():
    raise ConnectionError("dependency down")


def test_rejections_carry_the_breaker_name_and_seconds_to_the_next_probe(settings, key_prefix):
    settings.RESILIENCE = config(key_prefix, quick={"minimum_calls": 1, "open_for": 20})
    breaker = circuit_breaker("quick")
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    with pytest.raises(CircuitOpenError) as err:
        breaker.call(lambda: None)
    assert err.value.name == "quick"
    assert 19 < err.value.retry_after <= 20
