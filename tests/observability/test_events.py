"""Every transition and rejection: one signal, one structured log line, one metric."""

import logging
import re

import pytest

from resilience import CircuitOpenError, circuit_breaker
from resilience.core.event import Event
from resilience.observability import events
from resilience.observability.events import emit, format_line
from resilience.observability.metrics import InMemorySink
from resilience.signals import event_emitted


@pytest.fixture
def with_sink(settings):
    settings.RESILIENCE = {
        "HISTORY": False,
        "METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySink"]},
        "BREAKERS": {"ev": {"minimum_calls": 2, "open_for": 30}},
    }
    return settings


def _trip(name="ev"):
    breaker = circuit_breaker(name)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    return breaker


def _fail():
    raise ConnectionError


class Ticking:
    """A clock the test moves by hand."""

    now = 0.0

    def __call__(self):
        return self.now


def test_transition_sends_the_signal_with_the_event(with_sink):
    received = []

    def receiver(sender, event, **kwargs):
        received.append((sender, event))

    event_emitted.connect(receiver)
    try:
        _trip()
    finally:
        event_emitted.disconnect(receiver)
    assert len(received) == 1  # two failures, one transition
    sender, event = received[0]
    assert sender == "resilience"
    assert (event.area, event.kind, event.name) == ("breaker", "transition", "ev")
    assert event.fields["old_state"] == "closed" and event.fields["new_state"] == "open"
    assert event.fields["failure_rate"] == 100.0 and event.fields["calls"] == 2


def test_transition_writes_one_structured_warning_line(with_sink, caplog):
    with caplog.at_level(logging.INFO, logger="resilience"):
        _trip()
    lines = [r for r in caplog.records if r.name == "resilience.breaker"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert lines[0].getMessage().startswith("breaker transition name=ev old_state=closed new_state=open reason=threshold")
    assert "failure_rate=100.0" in lines[0].getMessage() and "calls=2" in lines[0].getMessage()
    assert lines[0].resilience["new_state"] == "open"


def test_rejections_are_counted_in_metrics_and_logged(with_sink, caplog):
    breaker = _trip()
    with caplog.at_level(logging.INFO, logger="resilience"):
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: None)
    sink = InMemorySink.last
    assert sink.value("resilience.breaker.rejected", name="ev") == 3
    assert sink.value("resilience.breaker.transition", name="ev", new_state="open") == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("breaker rejected name=ev")]
    assert len(lines) == 1 and "count=" not in lines[0]  # the first at once; the rest are folded into a summary
    with caplog.at_level(logging.INFO, logger="resilience"):
        events.flush_summaries()
    last = caplog.records[-1].getMessage()
    assert last.startswith("breaker rejected name=ev state=open") and last.endswith("count=2")


def test_an_outage_costs_a_bounded_number_of_log_lines(with_sink, caplog):
    """One line per state change and one summary per interval, never one per request."""
    clock = Ticking()
    events.summary = events.LogSummary(every=60.0, clock=clock)
    breaker = _trip()
    with caplog.at_level(logging.INFO, logger="resilience"):
        for second in range(300):  # five minutes of rejections, 20 a second
            clock.now = float(second)
            for _ in range(20):
                with pytest.raises(CircuitOpenError):
                    breaker.call(lambda: None)
        events.flush_summaries()
    rejected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("breaker rejected")]
    assert len(rejected) == 6  # the first, then one summary a minute: 60 s, 120 s, 180 s, 240 s, and the rest at exit
    assert sum(int(line.rsplit("count=", 1)[1]) for line in rejected[1:]) == 6000 - 1
    assert InMemorySink.last.value("resilience.breaker.rejected", name="ev") == 6000  # metrics see every one


def test_state_changes_are_never_folded(with_sink, caplog):
    with caplog.at_level(logging.INFO, logger="resilience"):
        for _ in range(3):
            breaker = _trip()
            breaker.reset()
    transitions = [r for r in caplog.records if r.getMessage().startswith("breaker transition")]
    assert len(transitions) == 6  # opened and reset, three times: each one logged


def test_a_broken_receiver_never_breaks_the_protected_call(with_sink, caplog):
    def broken(sender, event, **kwargs):
        raise RuntimeError("receiver bug")

    event_emitted.connect(broken)
    try:
        _trip()
    finally:
        event_emitted.disconnect(broken)
    errors = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("event receiver")]
    assert errors == [(logging.ERROR, f"event receiver {broken!r} failed: RuntimeError")]  # one event, one line


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("evil\nname=admin", '"evil\\nname=admin"'),
        ('quote" injected', '"quote\\" injected"'),
        ("x" * 10_000, "x" * 200),  # plain, cut to 200 characters
        ("tab\there", '"tab\\there"'),
    ],
)
def test_log_lines_escape_names_so_nothing_can_forge_a_line(name, shown):
    line = format_line(Event("breaker", "rejected", name, {"reason": "a\nb"}))
    assert line == f'breaker rejected name={shown} reason="a\\nb"'


def test_emit_survives_a_broken_metrics_sink(settings, caplog):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": ["resilience.observability.metrics.MetricsSink"]}}
    emit(Event("breaker", "rejected", "x", {}))
    errors = [(r.levelno, r.getMessage()) for r in caplog.records if r.getMessage().startswith("metrics sink")]
    assert len(errors) == 1 and errors[0][0] == logging.ERROR
    sink = r"<resilience\.observability\.metrics\.MetricsSink object at 0x[0-9a-f]+>"
    assert re.fullmatch(f"metrics sink {sink} failed: NotImplementedError", errors[0][1])


def test_a_dependency_that_stays_down_costs_a_bounded_number_of_probe_cycle_lines(with_sink, caplog):
    """redis:ratelimit probing every second logged two WARNING transitions per second per worker."""
    clock = Ticking()
    events.summary = events.LogSummary(every=60.0, clock=clock)
    failing = [("open", "half_open", "open_for elapsed"), ("half_open", "open", "probe failure")] * 120
    cycle = [("closed", "open", "threshold"), *failing, ("half_open", "closed", "probe success")]
    with caplog.at_level(logging.INFO, logger="resilience"):
        for n, (old, new, reason) in enumerate(cycle):
            clock.now = n / 2  # one probe cycle a second, for two minutes
            emit(Event("breaker", "transition", "flappy", {"old_state": old, "new_state": new, "reason": reason}))
        events.flush_summaries()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("breaker transition name=flappy")]
    assert "reason=threshold" in lines[0] and "probe success" in lines[-3]  # the trip and the recovery: at once
    assert len(lines) == 1 + 2 * 3 + 1  # per recurring reason: the first, a summary at 60 s, the rest at exit
    assert InMemorySink.last.value("resilience.breaker.transition", name="flappy") == len(cycle)  # metrics: every one


def test_a_folded_event_is_summarised_on_time_even_when_no_event_follows(monkeypatch, caplog):
    """Before: a summary came out only with the next event, minutes late or at exit (the second trial)."""
    from tests.waiting import wait_for

    monkeypatch.setattr(events, "summary", events.LogSummary(every=0.2))
    caplog.set_level(logging.INFO, logger="resilience")
    for _ in range(3):
        emit(Event("retry", "retry", "quiet-policy", {"attempt": 1}))
    assert wait_for(lambda: any("count=2" in r.getMessage() for r in caplog.records if "quiet-policy" in r.getMessage()), 3.0)


def test_a_new_failover_reason_is_a_line_at_once_not_a_field_of_a_later_summary(monkeypatch, caplog):
    monkeypatch.setattr(events, "summary", events.LogSummary(every=60))
    caplog.set_level(logging.INFO, logger="resilience")
    emit(Event("aws", "failover", "secretsmanager", {"reason": "EndpointConnectionError"}))
    emit(Event("aws", "failover", "secretsmanager", {"reason": "EndpointConnectionError"}))
    emit(Event("aws", "failover", "secretsmanager", {"reason": "region_timeout"}))
    reasons = [re.search(r"reason=(\S+)", r.getMessage()).group(1) for r in caplog.records if "failover" in r.getMessage()]
    assert reasons == ["EndpointConnectionError", "region_timeout"]


def test_credential_levels_are_a_line_each_with_the_value_of_the_moment(caplog):
    caplog.set_level(logging.INFO, logger="resilience")
    for left in (660, 600):
        emit(Event("aws", "credentials_fresh", "arn:aws:iam::123456789012:role/app", {"expires_in": left}))
    assert [r.getMessage().rsplit("=", 1)[1] for r in caplog.records if "credentials_fresh" in r.getMessage()] == ["660", "600"]


def test_rejections_are_summarised_per_state_so_a_summary_never_mislabels_them(monkeypatch, caplog):
    monkeypatch.setattr(events, "summary", events.LogSummary(every=60))
    caplog.set_level(logging.INFO, logger="resilience")
    for state in ("open", "open", "half_open"):
        emit(Event("breaker", "rejected", "split-by-state", {"state": state, "retry_after": 1.0}))
    states = [re.search(r"state=(\S+)", r.getMessage()).group(1) for r in caplog.records if "split-by-state" in r.getMessage()]
    assert states == ["open", "half_open"]  # the second "open" is folded into the open summary
