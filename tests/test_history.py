"""Transitions and manual actions end up in CircuitEvent, written off the request path."""

import pytest

from resilience import circuit_breaker, history
from resilience.models import CircuitEvent


@pytest.fixture
def recording(settings):
    settings.RESILIENCE = {"HISTORY": True, "BREAKERS": {"hist": {"minimum_calls": 2, "open_for": 30}}}


@pytest.mark.django_db(transaction=True)
def test_transitions_and_manual_actions_are_recorded_with_who_did_them(recording):
    breaker = circuit_breaker("hist")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    breaker.reset(actor="admin:alice")
    history.flush()
    rows = list(CircuitEvent.objects.order_by("id").values_list("breaker", "old_state", "new_state", "reason", "actor"))
    assert rows == [
        ("hist", "closed", "open", "threshold", ""),
        ("hist", "open", "closed", "reset", "admin:alice"),
    ]
    assert CircuitEvent.objects.order_by("id").first().failure_rate == 100.0


@pytest.mark.django_db(transaction=True)
def test_nothing_is_recorded_when_history_is_off(settings):
    settings.RESILIENCE = {"HISTORY": False}
    circuit_breaker("quiet").force_open()
    history.flush()
    assert CircuitEvent.objects.count() == 0


def _fail():
    raise ConnectionError
