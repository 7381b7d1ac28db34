"""GCRA arithmetic at its edges, the bounds of a limit, and what a decision reports (``tightest``:
the limit the ``RateLimit`` header names when several apply)."""

import pytest

from resilience.core.gcra import MAX_TOLERANCE, MICROS, Limit, LimitState, RateDecision, decide, micros, state, ttl
from resilience.exceptions import ConfigurationError


def limit(key="k", rate=10, period=10.0, burst=5, cost=1, policy="p"):
    return Limit(key, rate, period, burst, cost, policy)


def answer(lim, tat, now):
    s, new_tat = state(lim, tat, now)
    return (s.allowed, s.remaining, s.retry_after, s.reset_after, new_tat)


def test_a_first_request_starts_from_now():
    assert answer(limit(), None, 100.0) == (True, 4, 0.0, 1.0, 101.0)


def test_a_tat_in_the_past_counts_as_now():
    assert answer(limit(), 50.0, 100.0) == (True, 4, 0.0, 1.0, 101.0)


def test_a_tat_in_the_future_is_where_the_next_request_queues():
    assert answer(limit(), 3.0, 1.0) == (True, 2, 0.0, 3.0, 4.0)
    assert answer(limit(), 1.0, 1.0) == (True, 4, 0.0, 1.0, 2.0)


def test_a_request_exactly_at_the_tolerance_edge_is_admitted_with_nothing_left():
    assert answer(limit(), 5.0, 1.0) == (True, 0, 0.0, 5.0, 6.0)


def test_a_full_limit_rejects_until_one_interval_has_passed():
    assert answer(limit(), 5.0, 0.0) == (False, 0, 1.0, 5.0, 6.0)
    assert answer(limit(), 5.0, 0.5) == (False, 0, 0.5, 4.5, 6.0)
    assert answer(limit(), 5.0, 0.999) == (False, 0, pytest.approx(0.001), 4.001, 6.0)


def test_a_costly_request_rejected_still_reports_the_single_requests_that_would_pass():
    assert answer(limit(cost=3), 4.0, 0.0) == (False, 1, 2.0, 4.0, 7.0)


def test_a_tat_beyond_this_limits_tolerance_reports_zero_remaining_not_a_negative_count():
    assert answer(limit(), 7.0, 0.0) == (False, 0, 3.0, 7.0, 8.0)


def test_a_free_request_is_admitted_at_a_full_limit_and_moves_nothing():
    assert answer(limit(cost=0), 5.0, 0.0) == (True, 0, 0.0, 5.0, 5.0)


def test_decide_admits_only_when_every_limit_allows_and_returns_every_new_tat():
    a, b = limit("a"), limit("b", burst=1)
    decision, tats = decide([a, b], [None, None], 0.0)
    assert decision.allowed is True and tats == [1.0, 1.0]
    decision, tats = decide([a, b], [None, 1.0], 0.0)
    assert decision.allowed is False and tats == [1.0, 2.0]
    assert [s.allowed for s in decision.states] == [True, False]


def test_retry_after_is_the_longest_wait_among_the_rejecting_limits_only():
    short, long_, fine = limit("short"), limit("long", rate=1, burst=1), limit("fine", burst=100)
    decision, _ = decide([short, long_, fine], [5.0, 10.0, None], 0.0)
    assert decision.retry_after == 10.0  # long: one interval of 10 s past its stored TAT
    decision, _ = decide([short, fine], [5.0, None], 0.0)
    assert decision.retry_after == 1.0


def test_an_admitted_decision_has_no_retry_after():
    decision, _ = decide([limit()], [None], 0.0)
    assert decision.retry_after == 0.0


def test_tightest_names_a_rejecting_limit_before_any_admitting_one():
    roomy, full = limit("roomy", burst=100, policy="tenant"), limit("full", burst=100, policy="ip")
    decision, _ = decide([roomy, full], [None, 100.0], 0.0)
    assert decision.tightest is not None and decision.tightest.limit.policy == "ip"
    assert [s.remaining for s in decision.states] == [99, 0]


def test_tightest_among_admitting_limits_is_the_one_with_the_fewest_left():
    ip, tenant, user = limit("a", burst=5, policy="ip"), limit("b", burst=3, policy="tenant"), limit("c", burst=9, policy="user")
    decision, _ = decide([ip, tenant, user], [None, None, None], 0.0)
    assert decision.tightest is not None
    assert (decision.tightest.limit.policy, decision.tightest.remaining) == ("tenant", 2)


def test_tightest_among_rejecting_limits_is_the_one_with_the_fewest_left_and_the_first_on_a_tie():
    costly_a, costly_b, flat = limit("a", cost=3, policy="a"), limit("b", cost=3, policy="b"), limit("c", policy="c")
    decision, _ = decide([costly_a, flat], [4.0, 5.0], 0.0)
    assert decision.tightest is not None and decision.tightest.limit.policy == "c"  # 0 left beats 1 left
    decision, _ = decide([costly_a, costly_b], [4.0, 4.0], 0.0)
    assert decision.tightest is not None and decision.tightest.limit.policy == "a"


def test_a_decision_without_limits_has_no_tightest_and_no_states():
    decision, tats = decide([], [], 0.0)
    assert (decision.allowed, decision.states, decision.tightest, decision.retry_after, tats) == (True, (), None, 0.0, [])
    assert RateDecision(True).states == ()
    assert RateDecision(False).tightest is None


def test_a_decision_given_its_inputs_works_its_states_out_when_read():
    lim = limit()
    decision = RateDecision(False, inputs=([lim], [5.0], 0.0))
    assert decision.states == (LimitState(lim, False, 0, 1.0, 5.0),)
    assert decision.states is decision.states  # worked out once
    assert decision.retry_after == 1.0


def test_a_decision_given_its_states_keeps_them():
    s = LimitState(limit(), True, 3, 0.0, 2.0)
    assert RateDecision(True, states=(s,)).states == (s,)


@pytest.mark.parametrize(("new_tat", "seconds"), [(10.2, 11), (10.0, 10), (0.5, 1), (0.0, 1), (-3.0, 1)])
def test_a_stored_tat_lives_whole_seconds_until_it_no_longer_matters_and_at_least_one(new_tat, seconds):
    assert ttl(new_tat, 0.0) == seconds


def test_ttl_is_counted_from_now():
    assert ttl(105.5, 100.0) == 6


def test_a_trusted_limit_is_the_validated_one_without_the_checks():
    checked = limit(rate=3, period=1.0, burst=3, cost=2, policy="ip")
    trusted = Limit.trusted("k", 3, 1.0, 3, 2, "ip", checked.wire)
    assert trusted == checked and trusted.wire == (333_333, 999_999)
    assert (trusted.interval, trusted.tolerance) == (0.333333, 0.999999)


def test_interval_and_tolerance_are_the_wire_microseconds_in_seconds():
    assert MICROS == 1_000_000
    lim = limit(rate=4, period=1.0, burst=2)
    assert lim.wire == (250_000, 500_000)
    assert (lim.interval, lim.tolerance) == (0.25, 0.5)


def test_one_request_per_microsecond_is_the_finest_rate():
    assert micros(1_000_000, 1.0, 1) == (1, 1)
    with pytest.raises(ConfigurationError, match="rate limit 'p': 2000001 per 1 s is finer than one request per microsecond"):
        micros(2_000_001, 1.0, 1, "p")


def test_a_tolerance_of_exactly_366_days_is_allowed_one_microsecond_more_is_refused():
    assert MAX_TOLERANCE == 366 * 86_400 * 1_000_000
    assert micros(1_000_000, 1.0, MAX_TOLERANCE) == (1, MAX_TOLERANCE)
    with pytest.raises(
        ConfigurationError, match=f"rate limit 'p': burst {MAX_TOLERANCE + 1} at 1000000 per 1 s lasts over 366 days"
    ):
        micros(1_000_000, 1.0, MAX_TOLERANCE + 1, "p")


@pytest.mark.parametrize(
    "fields",
    [{"rate": 1}, {"period": 366 * 86_400, "rate": 1, "burst": 1}, {"period": 0.5}, {"burst": 1}, {"cost": 0}, {"cost": 5}],
)
def test_limits_at_their_bounds_are_accepted(fields):
    lim = limit(**fields)
    assert all(getattr(lim, name) == value for name, value in fields.items())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 0}, "rate must be a whole number from 1, got 0"),
        ({"rate": True}, "rate must be a whole number from 1, got True"),
        ({"rate": 2.0}, "rate must be a whole number from 1, got 2.0"),
        ({"period": 0}, "period must be seconds above 0, got 0"),
        ({"period": -1.0}, "period must be seconds above 0, got -1.0"),
        ({"period": True}, "period must be seconds above 0, got True"),
        ({"period": "10"}, "period must be seconds above 0, got '10'"),
        ({"period": 366 * 86_400 + 0.5}, "period must be seconds above 0, got 31622400.5"),
        ({"burst": 0}, "burst must be a whole number from 1, got 0"),
        ({"burst": True}, "burst must be a whole number from 1, got True"),
        ({"burst": 2.0}, "burst must be a whole number from 1, got 2.0"),
        ({"cost": -1}, r"cost must be 0 to burst \(5\), got -1"),
        ({"cost": 6}, r"cost must be 0 to burst \(5\), got 6"),
        ({"cost": True}, r"cost must be 0 to burst \(5\), got True"),
        ({"cost": 1.0}, r"cost must be 0 to burst \(5\), got 1.0"),
    ],
)
def test_each_malformed_field_is_refused_by_name(fields, message):
    with pytest.raises(ConfigurationError, match=f"^rate limit 'p': {message}$"):
        limit(**fields)


def test_a_limit_is_compared_and_shown_by_its_policy_fields_not_its_derived_wire():
    checked = limit()
    assert Limit.trusted("k", 10, 10.0, 5, 1, "p", (0, 0)) == checked
    assert "wire" not in repr(checked)


def test_a_request_up_to_a_nanosecond_past_the_edge_is_float_noise_and_admitted():
    free = limit(cost=0)  # T = 1 s, τ = 5 s: allowed while TAT - τ <= now (+ 1 ns of float noise)
    assert answer(free, 6.000000001, 1.0)[0] is True  # exactly now + 1e-9 past the edge
    assert answer(free, 6.00000001, 1.0)[0] is False


def test_a_rejected_requests_remaining_is_counted_in_intervals():
    lim = limit(rate=20, cost=3)  # T = 0.5 s, τ = 2.5 s
    assert answer(lim, 1.5, 0.0) == (False, 2, 0.5, 1.5, 3.0)


def test_limits_and_tats_of_different_lengths_are_an_error_not_a_dropped_limit():
    with pytest.raises(ValueError):
        decide([limit("a"), limit("b")], [None], 0.0)
    with pytest.raises(ValueError):
        assert RateDecision(True, inputs=([limit("a"), limit("b")], [None], 0.0)).states is None  # raises before
