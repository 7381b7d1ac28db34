"""Transitions and manual actions end up in CircuitEvent, written off the request path."""

import logging

import pytest
from django.db import connection, transaction

from resilience import circuit_breaker
from resilience.core.event import Event
from resilience.models import CircuitEvent
from resilience.observability import history
from resilience.observability.metrics import InMemorySink
from resilience.signals import event_emitted


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_drops_are_reported_at_once_then_summed_at_most_once_per_interval():
    clock, seen = FakeClock(), []
    drops = history.DropReport(every=60.0, clock=clock, sink=seen.append)
    for _ in range(10_000):  # ten minutes of drops, one every 60 ms
        drops.dropped()
        clock.now += 0.06
    drops.report(force=True)
    assert seen[0] == Event("history", "dropped", "CircuitEvent", {"count": 1, "total": 1, "queue": history.QUEUE_SIZE})
    assert len(seen) <= 1 + 600 / 60 + 1  # the first, one per interval, the forced rest
    assert sum(e.fields["count"] for e in seen) == 10_000 == seen[-1].fields["total"]
    clock.now += 61  # quiet for an interval: the next drop of a new outage is reported at once
    drops.dropped()
    assert seen[-1].fields == {"count": 1, "total": 10_001, "queue": history.QUEUE_SIZE}


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_reports_its_drops_as_events_and_a_metric_in_a_bounded_number_of_lines(settings, caplog):
    settings.RESILIENCE = {
        "HISTORY": True,
        "BREAKERS": {"hist": {}},
        "METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySink"]},
    }
    seen = []

    def collect(sender, event, **kwargs):
        if event.area == "history":
            seen.append(event)

    event_emitted.connect(collect)
    breaker, produced = circuit_breaker("hist"), 11_000  # the queue holds 10,000
    try:
        with caplog.at_level(logging.INFO, logger="resilience.history"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {CircuitEvent._meta.db_table} IN ACCESS EXCLUSIVE MODE")  # the writer waits
                for n in range(produced):
                    breaker.force_open() if n % 2 == 0 else breaker.reset()
                assert len(seen) == 1 and seen[0].fields["count"] == 1  # the first drop, at once
            history.flush()  # lock released: the queue drains, the drops since the first are summed up
    finally:
        event_emitted.disconnect(collect)
    written = CircuitEvent.objects.count()
    assert [e.kind for e in seen] == ["dropped", "dropped"]
    assert sum(e.fields["count"] for e in seen) == produced - written >= 500
    lines = [r for r in caplog.records if r.name == "resilience.history"]
    assert len(lines) == 2 and lines[1].getMessage().startswith("history dropped name=CircuitEvent count=")
    assert InMemorySink.last is not None  # the metric counts dropped records, not reports
    assert InMemorySink.last.value("resilience.history.dropped", name="CircuitEvent") == produced - written


@pytest.mark.django_db(transaction=True)
def test_a_write_the_database_refuses_is_a_history_write_failed_event(recording, events):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE resilience_circuitevent RENAME TO resilience_circuitevent_away")
    try:
        circuit_breaker("hist").force_open()
        history.flush()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE resilience_circuitevent_away RENAME TO resilience_circuitevent")
    failed = [e for e in events if (e.area, e.kind) == ("history", "write_failed")]
    assert [(e.name, e.fields["count"]) for e in failed] == [("CircuitEvent", 1)]
    assert failed[0].fields["error"] == "ProgrammingError"


@pytest.mark.django_db(transaction=True)
def test_forcing_the_databases_own_breaker_open_is_recorded_and_counts_nothing_against_it(recording, events):
    """The history row goes to the database whose breaker was just forced open: the library's own
    bookkeeping skips that breaker (before, the write was refused: history write_failed CircuitOpenError)."""
    from resilience.integrations.postgres.guards import breaker_for

    handle = breaker_for("default")
    before = handle.breaker.call_totals()
    handle.force_open(actor="manage.py:ops")
    try:
        history.flush()  # the writer's INSERT while the breaker refuses everyone else's statements
        assert handle.breaker.call_totals() == before  # not one of its calls
    finally:
        handle.reset(actor="manage.py:ops")
    history.flush()
    rows = list(CircuitEvent.objects.order_by("id").values_list("breaker", "old_state", "new_state", "actor"))
    assert rows == [
        ("postgres:default", "closed", "forced_open", "manage.py:ops"),
        ("postgres:default", "forced_open", "closed", "manage.py:ops"),
    ]
    assert not [e for e in events if (e.area, e.kind) == ("history", "write_failed")]
