import pytest

from resilience.core.timeout_header import MAX_HEADER, parse_grpc, parse_seconds


@pytest.mark.parametrize(("value", "seconds"), [("2.5", 2.5), (" 0.25 ", 0.25), ("1e-3", 0.001), ("30", 30.0)])
def test_x_request_timeout_is_read_as_seconds(value, seconds):
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize("value", [None, "", "0", "0.0", "-1", "-0.5", "nan", "inf", "-inf", "abc", "1s", "\u0661", "1\u00a0",
                                   "1_0", "+1", "0x10", "1e", "."])
def test_x_request_timeout_ignores_empty_zero_negative_non_finite_malformed_and_non_ascii(value):
    assert parse_seconds(value) is None


def test_x_request_timeout_of_max_header_characters_is_read_one_more_is_ignored():
    assert MAX_HEADER == 32
    assert parse_seconds("1".ljust(32)) == 1.0
    assert parse_seconds("1".ljust(33)) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2H", 7200.0), ("3M", 180.0), ("4S", 4.0), ("250m", 0.25), ("7u", 7e-6), ("1n", 1e-9), (" 5S ", 5.0),
     ("99999999S", 99_999_999.0)],
)  # fmt: skip
def test_grpc_timeout_reads_every_unit(value, seconds):
    assert parse_grpc(value) == seconds


@pytest.mark.parametrize("value", [None, "", "0m", "0S", "123456789m", "5", "m", "5s", "-5S", "5.5S", "5 S", "\u0665S"])
def test_grpc_timeout_ignores_zero_too_many_digits_unknown_units_and_malformed(value):
    assert parse_grpc(value) is None


def test_grpc_timeout_of_max_header_characters_is_read_one_more_is_ignored():
    assert parse_grpc("1m".ljust(32)) == 0.001
    assert parse_grpc("1m".ljust(33)) is None
