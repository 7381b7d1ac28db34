import random

import pytest

from resilience.core.backoff import Composable, Constant, DecorrelatedJitter, EqualJitter, Exponential, FullJitter, Sum
from resilience.core.budget import LocalRetryBudget
from resilience.core.clock import FakeClock
from resilience.exceptions import ConfigurationError

RNG = random.Random(7)


@pytest.mark.parametrize("strategy", [FullJitter(0.1, 2), EqualJitter(0.1, 2), DecorrelatedJitter(0.1, 2)])
def test_jitter_stays_random_and_within_the_cap_once_capped(strategy):
    previous, delays = 0.0, []
    for attempt in range(1, 200):
        previous = strategy(attempt, previous, RNG)
        delays.append(previous)
    late = delays[50:]
    assert max(late) <= 2.0
    assert len({round(d, 6) for d in late}) > 140  # no lock-step at the cap


def test_exponential_doubles_up_to_the_cap():
    assert [Exponential(0.1, 1)(n, 0, RNG) for n in (1, 2, 3, 4, 5)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])


def test_full_jitter_draws_below_the_exponential_ceiling():
    assert all(0 <= FullJitter(0.1, 10)(3, 0, RNG) <= 0.4 for _ in range(500))


def test_equal_jitter_keeps_at_least_half_the_exponential_delay():
    assert all(0.2 <= EqualJitter(0.1, 10)(3, 0, RNG) <= 0.4 for _ in range(500))


def test_strategies_compose_by_addition_and_capping():
    combined = (Exponential(1, 100) + Constant(0.5)).capped(3)
    assert [combined(n, 0, RNG) for n in (1, 2, 3)] == [1.5, 2.5, 3]


def test_huge_attempt_numbers_do_not_overflow():
    assert FullJitter(0.1, 5)(10_000, 0, RNG) <= 5


def test_budget_allows_a_floor_then_a_share_of_calls():
    clock = FakeClock()
    budget = LocalRetryBudget(ratio=0.2, floor_per_second=0.1, window=10, clock=clock)  # floor: 1 retry
    assert budget.try_retry() and not budget.try_retry()
    for _ in range(20):
        budget.record_call()
    assert [budget.try_retry() for _ in range(5)] == [True, True, True, True, False]  # 1 + 20 % of 20


def test_budget_refills_as_the_window_slides():
    clock = FakeClock()
    budget = LocalRetryBudget(ratio=0.0, floor_per_second=0.1, window=10, clock=clock)
    assert budget.try_retry() and not budget.try_retry()
    clock.advance(10)
    assert budget.try_retry()


@pytest.mark.parametrize("make", [lambda: FullJitter(-1, 5), lambda: EqualJitter(0.1, float("nan")), lambda: Constant("1")])
def test_backoff_parameters_are_validated(make):
    from resilience.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="must be a number from 0 to 86400"):
        make()


def test_strategies_can_be_summed_with_the_builtin_sum():
    import random

    from resilience.core.backoff import Constant

    total = sum([Constant(0.5), Constant(0.25), Constant(1.0)])
    assert total(1, 0.0, random.Random(1)) == 1.75


class Bounds(random.Random):
    """Draws the lowest or the highest value ``uniform`` may return."""

    def __init__(self, highest: bool) -> None:
        super().__init__(0)
        self.highest = highest

    def uniform(self, a, b):
        return b if self.highest else a


def test_decorrelated_jitter_draws_between_base_and_three_times_the_previous_delay_up_to_the_cap():
    strategy = DecorrelatedJitter(0.1, 10)
    assert strategy(1, 2.0, Bounds(highest=True)) == 6.0
    assert strategy(1, 2.0, Bounds(highest=False)) == 0.1
    assert strategy(1, 0.0, Bounds(highest=True)) == pytest.approx(0.3)  # no previous delay: three times base
    assert strategy(1, 5.0, Bounds(highest=True)) == 10.0  # capped before drawing


def test_every_strategy_has_its_documented_defaults():
    for strategy in (FullJitter(), EqualJitter(), DecorrelatedJitter(), Exponential()):
        assert (strategy.base, strategy.cap) == (0.1, 10.0)
    assert Constant().delay == 0.1


def test_the_exponent_stops_growing_at_62_so_a_tiny_base_still_reaches_a_finite_delay():
    assert Exponential(1e-15, 86_400)(1_000, 0.0, RNG) == 1e-15 * 2**62


def test_backoff_seconds_may_be_anything_from_zero_to_a_day():
    assert Constant(86_400).delay == 86_400 and Constant(0).delay == 0
    with pytest.raises(ConfigurationError, match="must be a number from 0 to 86400"):
        Constant(86_400.5)


def test_only_zero_added_to_a_strategy_is_the_strategy_itself():
    c = Constant(1.0)
    assert 0 + c is c
    assert isinstance(2 + c, Sum) and isinstance(True + c, Sum)


def test_a_bare_composable_is_not_a_strategy():
    with pytest.raises(NotImplementedError):
        Composable()(1, 0.0, RNG)
