"""The Lua scripts of the Redis stores, and the name of every KEYS and ARGV slot of each.

Each script's keys and arguments are a dataclass each: the field order is the slot order
(``KEYS[1]``/``ARGV[1]`` first) and the ``.lua`` file's header lists the same names, so no caller
writes a positional list. (``ratelimit.lua`` takes one (increment, tolerance) pair per limit, a list
of any length: ``storage.redis.ratelimit`` packs it, its header documents it.)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, Generic, TypeVar

import redis


class Slots:
    """A script's KEYS or ARGV: the dataclass's fields, in order."""

    def slots(self) -> list[Any]:
        """The values in slot order."""
        return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class BreakerKeys(Slots):
    """``breaker_*.lua``: the state hash, which holds the half-open permits too (fields ``p:<permit id>``,
    each its expiry). One key, so a node never refuses the call while the breaker's slot migrates."""

    state: str


@dataclass(frozen=True)
class BreakerArgs(Slots):
    """``breaker_*.lua`` (see ``breaker_common.lua``). ``gen`` is the caller's generation: the one it
    expects (trip, release) or the last one it knows; a record created afresh starts above it."""

    name: str
    channel: str  # where changes are published
    ttl: int  # seconds the state keys live
    open_for: float
    multiplier: float  # open_for grows by this per consecutive trip
    open_for_max: float
    half_open_calls: int
    permit_ttl: float  # seconds a half-open permit is held
    gen: int
    permit: str  # the permit id ('' when none)
    arg: str  # the probe's outcome (release) or the manual operation (manual); '' otherwise


@dataclass(frozen=True)
class NamesAddKeys(Slots):
    """``names_add.lua``: the shared set of breaker names."""

    names: str


@dataclass(frozen=True)
class NamesAddArgs(Slots):
    """``names_add.lua``: the name, the set's bound and its TTL in seconds."""

    name: str
    max_names: int
    ttl: int


@dataclass(frozen=True)
class RetryBudgetKeys(Slots):
    """``retry_budget.lua``: the budget's hash (fields ``c:<second>``, ``r:<second>``)."""

    budget: str


@dataclass(frozen=True)
class RetryBudgetArgs(Slots):
    """``retry_budget.lua``: calls counted since the last decision, whether to take a retry (0/1),
    and the budget: ``retries ≤ ratio · calls + floor`` over ``window`` seconds."""

    pending_calls: int
    want_retry: int
    ratio: float
    floor: float
    window: int


@dataclass(frozen=True)
class StaleSetKeys(Slots):
    """``stale_set.lua``: the value, and its fallback's index (a zset of digests by expiry in ms)."""

    value: str
    index: str


@dataclass(frozen=True)
class StaleSetArgs(Slots):
    """``stale_set.lua``: the sealed value, its digest (its member in the index), its TTL in whole
    milliseconds and the fallback's cap of live keys."""

    sealed: str
    digest: str
    ttl_ms: int
    max_keys: int


@dataclass(frozen=True)
class LoginFailureKeys(Slots):
    """``login_failure.lua``: a (username, address) pair's cool-off TAT and its failure count."""

    cooloff: str
    failures: str


@dataclass(frozen=True)
class LoginFailureArgs(Slots):
    """``login_failure.lua``: the policy's emission interval (µs), the failures admitted before the
    waits double, the seconds the count lives and the longest wait (µs)."""

    interval_us: int
    threshold: int
    window: int
    max_wait_us: int


@dataclass(frozen=True)
class LockReleaseKeys(Slots):
    """``lock_release.lua``: the lock."""

    lock: str


@dataclass(frozen=True)
class LockReleaseArgs(Slots):
    """``lock_release.lua``: the owner's token, milliseconds to keep the lock as ``mark`` instead of
    deleting it (0: delete), and that mark."""

    owner: str
    keep_ms: int
    mark: bytes


KeysT = TypeVar("KeysT", bound=Slots)
ArgsT = TypeVar("ArgsT", bound=Slots)


class Script(Generic[KeysT, ArgsT]):
    """One registered script (EVALSHA, loaded again if the server lost it), called with named slots."""

    def __init__(self, client: redis.Redis, *files: str) -> None:
        folder = resources.files(__package__) / "lua"
        self._script = client.register_script("\n".join((folder / f).read_text() for f in files))

    def __call__(self, keys: KeysT, args: ArgsT, client: Any = None) -> Any:
        """Run it (on ``client``, e.g. a pipeline, when given); Redis errors propagate."""
        return self._script(keys=keys.slots(), args=args.slots(), client=client)


BREAKER_OPS = ("acquire", "trip", "release", "manual", "view")


def breaker_scripts(client: redis.Redis) -> dict[str, Script[BreakerKeys, BreakerArgs]]:
    """Each breaker operation's script, with the shared prelude ``breaker_common.lua``."""
    return {op: Script(client, "breaker_common.lua", f"breaker_{op}.lua") for op in BREAKER_OPS}


def names_add(client: redis.Redis) -> Script[NamesAddKeys, NamesAddArgs]:
    """``names_add.lua``: list a breaker name, up to a bound."""
    return Script(client, "names_add.lua")


def retry_budget(client: redis.Redis) -> Script[RetryBudgetKeys, RetryBudgetArgs]:
    """``retry_budget.lua``: count calls, and take a retry if the budget allows."""
    return Script(client, "retry_budget.lua")


def stale_set(client: redis.Redis) -> Script[StaleSetKeys, StaleSetArgs]:
    """``stale_set.lua``: keep a stale value within its fallback's cap."""
    return Script(client, "stale_set.lua")


def lock_release(client: redis.Redis) -> Script[LockReleaseKeys, LockReleaseArgs]:
    """``lock_release.lua``: release a lock for its owner only."""
    return Script(client, "lock_release.lua")
