"""Identities: usernames in one spelling whatever their case, script tricks or JSON type."""

import pytest

from resilience.ratelimit.identity import MAX_IDENTITY, identity_text, normalise


@pytest.mark.parametrize("identity", ["ÄLICE", "älice", " Älice ", "ÄLİCE".replace("İ", "I"), "Ä" + "lice"])
def test_usernames_are_case_and_unicode_folded(identity):
    assert normalise(identity) == "älice"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("victim3", "victim3"),
        ("victim3" + " " * 60, "victim3"),
        ("\tVICTIM3\n", "victim3"),
        ("ｖｉｃｔｉｍ３", "victim3"),  # fullwidth: NFKC
        ("vic\u200btim3", "victim3"),  # zero-width space
        ("vic\u00adtim3\u200d", "victim3"),  # soft hyphen, zero-width joiner
        ("\u202evictim3", "victim3"),  # right-to-left override
        ("VİCTİM3".replace("İ", "I"), "victim3"),
        ("Straße", "strasse"),  # case folding, not lower()
        (12345, "12345"),  # a JSON number: DRF's CharField makes it "12345"
        (12.5, "12.5"),
        (["victim3"], '["victim3"]'),  # refused by the serializer; still counted, as its JSON
        ({"a": 1}, '{"a": 1}'),
        (True, "true"),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_identities_are_normalised_the_same_way_whatever_their_json_type(value, expected):
    assert identity_text(value) == expected


def test_look_alike_letters_of_other_scripts_stay_distinct_identities():
    assert identity_text("vісtim3") != identity_text("victim3")  # Cyrillic і and с: another user to the backend


def test_very_long_identities_are_bounded_before_any_work():
    assert len(identity_text("x" * 10_000_000)) == MAX_IDENTITY
    assert len(identity_text(["y" * 100_000])) <= MAX_IDENTITY
