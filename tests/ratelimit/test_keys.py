"""Storage keys: hashed, short, one hash tag, and never a cache of hostile identities."""

import pytest

from resilience.ratelimit.keys import storage_key


@pytest.mark.parametrize("identity", ["a:b", "*", "{tag}", "line\nbreak", "x" * 10_000, "ünï", "\x00"])
def test_keys_from_hostile_identities_are_short_hashed_and_share_one_hash_tag(identity):
    key = storage_key("pfx", "tenant", identity)
    assert key.startswith("pfx:rl2:{rl}:") and key.count("{") == 1 and len(key) < 80
    assert "\n" not in key and identity not in key


def test_long_hostile_identities_are_hashed_but_never_kept_in_the_key_cache():
    from resilience.ratelimit.keys import _cached_key

    before = _cached_key.cache_info().currsize
    assert storage_key("pfx", "login:user", "x" * 10_000) == storage_key("pfx", "login:user", "X" * 10_000)
    assert _cached_key.cache_info().currsize == before
