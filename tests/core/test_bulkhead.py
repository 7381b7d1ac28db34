from resilience.core.bulkhead import Bulkhead


def test_admits_exactly_limit_callers_then_refuses_without_counting_the_refused():
    bulkhead = Bulkhead(2)
    assert (bulkhead.limit, bulkhead.active) == (2, 0)
    assert [bulkhead.try_acquire() for _ in range(4)] == [True, True, False, False]
    assert bulkhead.active == 2


def test_each_admission_counts_one_and_each_release_frees_one():
    bulkhead = Bulkhead(3)
    assert bulkhead.try_acquire() is True
    assert bulkhead.active == 1
    assert bulkhead.try_acquire() is True
    assert bulkhead.active == 2
    bulkhead.release()
    assert bulkhead.active == 1
    bulkhead.release()
    assert bulkhead.active == 0


def test_a_released_slot_admits_the_next_caller():
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire() is True
    assert bulkhead.try_acquire() is False
    bulkhead.release()
    assert bulkhead.try_acquire() is True
    assert bulkhead.try_acquire() is False


def test_a_limit_of_zero_admits_nobody():
    assert Bulkhead(0).try_acquire() is False
