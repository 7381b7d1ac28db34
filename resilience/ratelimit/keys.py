"""Storage keys of rate limits: client input never reaches Redis as is.

A key is ``{prefix}:rl2:{rl}:{policy hash}:{identity hash}``: the identity normalised
(``identity.normalise``) and hashed, the policy's name hashed, and one hash tag for every key, so a
decision's script touches a single Redis Cluster slot.
"""

from __future__ import annotations

import functools

from resilience.ratelimit.identity import normalise
from resilience.storage.keys import digest

HASH_TAG = "{rl}"
KEY_SCHEMA = "rl2"  # values are µs since the Unix epoch; "rl" held seconds since 2023, never to be read as µs
CACHED_IDENTITY = 256  # storage keys of longer identities (hostile usernames) are hashed every time, never kept


def storage_key(prefix: str, policy_name: str, identity: str) -> str:
    """The key of ``identity``'s state under policy ``policy_name`` (normalised and hashed)."""
    if len(identity) <= CACHED_IDENTITY:
        return _cached_key(prefix, policy_name, identity)
    return _key(prefix, policy_name, identity)


@functools.lru_cache(maxsize=8192)  # a client's identities recur; hashing costs more than the lookup
def _cached_key(prefix: str, policy_name: str, identity: str) -> str:
    return _key(prefix, policy_name, identity)


def _key(prefix: str, policy_name: str, identity: str) -> str:
    return f"{prefix}:{KEY_SCHEMA}:{HASH_TAG}:{_name_hash(policy_name)}:{digest(normalise(identity), 32)}"


@functools.lru_cache(maxsize=1024)
def _name_hash(policy_name: str) -> str:
    return digest(policy_name, 12)
