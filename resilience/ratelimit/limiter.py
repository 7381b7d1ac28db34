"""Rate-limit decisions for the throttles and the middleware: policies, keys, and what to do when
Redis fails.

A policy is a rate in DRF syntax (``"100/min"``; ``s``/``m``/``h``/``d`` by first letter) with an
optional burst (``"100/min;burst=20"``; default: the rate's count), a ``fail`` mode for Redis
trouble — ``open`` (admit), ``closed`` (refuse) or ``local`` (decide with this process's own
counters) — and ``shadow`` (decide and report, never refuse). Keys are built from normalised,
hashed identities and share one hash tag, so a decision's script runs on Redis Cluster too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from resilience.breakers.decorator import circuit_breaker
from resilience.core.event import Event
from resilience.core.gcra import Decision, Limit, LimitState
from resilience.exceptions import CircuitOpenError, ConfigurationError
from resilience.observability.events import emit
from resilience.storage.redis.ratelimit import MemoryRateLimitStore, RedisRateLimitStore

FAIL_MODES = ("open", "closed", "local")
# [0-9], not \d: Python's \d also matches other scripts' digits ("१०" would read as 10)
_RATE = re.compile(r"^\s*([0-9]{1,9})\s*/\s*([0-9]{0,6})\s*([smhd])[a-z]*\s*(?:;\s*burst\s*=\s*([0-9]{1,9})\s*)?$", re.IGNORECASE)
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
HASH_TAG = "{rl}"
MAX_RAW_IDENTITY = 4096  # characters of a client's identity looked at (usernames are far shorter)
MAX_IDENTITY = 1024  # characters of a normalised identity kept (hashed into the key)
INVISIBLE = "\x00invisible"  # every identity made only of invisible characters counts as this one
CACHED_IDENTITY = 256  # storage keys of longer identities (hostile usernames) are hashed every time, never kept
KEY_SCHEMA = "rl2"  # values are µs since the Unix epoch; "rl" held seconds since 2023, never to be read as µs
REDIS_BREAKER = "redis:ratelimit"
CLOSED_RETRY_AFTER = 1.0  # seconds a fail-closed refusal asks the client to wait


@dataclass(frozen=True)
class RatePolicy:
    """One configured limit. ``space`` says where it was configured (``"mw"``: the middleware and
    routes, ``"drf"``: DRF throttles): each place counts in its own keys, so the middleware's
    ``"ip"`` and DRF's ``"ip"`` never share a counter. A ``rate`` of 0 refuses every request."""

    name: str
    rate: int
    period: float
    burst: int
    fail: str = "open"
    shadow: bool = False
    space: str = ""
    wire: tuple[int, int] = field(init=False, repr=False, compare=False)  # (T, τ) in µs, as ``Limit.wire``
    key_name: str = field(init=False, repr=False, compare=False)  # the name hashed into storage keys

    def __post_init__(self) -> None:
        if self.rate == 0:  # "0/min": nothing is admitted; no state is ever read or written
            wire = (0, 0)
        else:
            wire = Limit("check", self.rate, self.period, self.burst, 0, self.name).wire  # validates once, named
            if self.name.startswith("check:"):  # looked at, never consumed: refuses once `burst` is used up
                wire = (wire[0], wire[1] - wire[0])
        object.__setattr__(self, "wire", wire)
        object.__setattr__(self, "key_name", f"{self.space}:{self.name}" if self.space else self.name)

    @property
    def refuses_all(self) -> bool:
        return self.rate == 0

    def limit(self, identity: str, prefix: str, cost: int = 1) -> Limit:
        key = storage_key(prefix, self.key_name, identity)
        return Limit.trusted(key, self.rate, self.period, self.burst, cost, self.name, self.wire)

    @property
    def header(self) -> str:
        """IETF ``RateLimit-Policy`` item: ``"ip";q=100;w=60``."""
        return f'"{self.name}";q={self.burst};w={int(self.period)}'


def parse_rate(text: Any, where: str) -> tuple[int, float, int]:
    """``"100/min"`` → (100, 60.0, 100); ``"10/5s;burst=20"`` → (10, 5.0, 20). Errors name ``where``."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigurationError(f'{where} must be a rate like "100/min" or "10/s;burst=20", got {text!r}')
    count, multiple, unit, burst = match.groups()
    rate, period = int(count), int(multiple or 1) * _PERIODS[unit.lower()]
    if period < 1:
        raise ConfigurationError(f"{where} must have a period of at least one second, got {text!r}")
    if rate == 0:  # as in DRF and django-ratelimit: refuse everything (a burst would be meaningless)
        if burst and int(burst) != 0:
            raise ConfigurationError(f"{where}: a rate of 0 refuses every request and takes no burst, got {text!r}")
        return 0, float(period), 0
    if burst is not None and int(burst) < 1:
        raise ConfigurationError(f"{where} must have a burst of at least 1, got {text!r}")
    return rate, float(period), int(burst) if burst else rate


def policy(name: str, spec: Any, where: str, default_fail: str = "open", *, space: str = "") -> RatePolicy:
    """A policy from a rate string or ``{"rate": ..., "fail": ..., "shadow": ...}``; ``space``: see ``RatePolicy``."""
    values = spec if isinstance(spec, dict) else {"rate": spec}
    unknown = sorted(set(values) - {"rate", "fail", "shadow"})
    if unknown:
        raise ConfigurationError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; known: fail, rate, shadow")
    rate, period, burst = parse_rate(values.get("rate"), f"{where} rate")
    fail = values.get("fail", default_fail)
    if fail not in FAIL_MODES:
        raise ConfigurationError(f'{where} fail must be one of "open", "closed", "local", got {fail!r}')
    return RatePolicy(name, rate, period, burst, fail, bool(values.get("shadow", False)), space)


def normalise(identity: str) -> str:
    """One spelling per identity, applied before any key is built: NFKC, invisible format characters
    (zero-width spaces and joiners, soft hyphens, bidi marks) removed, case-folded, trimmed, at most
    ``MAX_IDENTITY`` characters. "ÄLICE ", "älice", "ａｌｉｃｅ" and "al\u200bice" are one identity.
    Letters of other scripts that merely look alike stay distinct: the authentication backend sees
    them as other users, so counting them apart lets no one past a limit."""
    stripped = identity.strip()  # before cutting: 5,000 spaces and "victim" is "victim" to DRF's CharField
    text = unicodedata.normalize("NFKC", stripped[:MAX_RAW_IDENTITY])
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
        text = unicodedata.normalize("NFKC", text.casefold())
    text = text.casefold().strip()[:MAX_IDENTITY]
    return text if text or not stripped else INVISIBLE  # never "no identity" for text that was there


def identity_text(value: Any) -> str | None:
    """A client-supplied identity (a username from a JSON or form body) as the text the authentication
    backend will see, whatever its JSON type: DRF's ``CharField`` turns ``12345`` into ``"12345"``.
    Lists, objects and booleans (refused by the serializer anyway) count as their JSON. Normalised;
    None when empty."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif value is None:
        return None
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)[:MAX_RAW_IDENTITY]
        except (TypeError, ValueError, RecursionError):
            text = type(value).__name__
    text = normalise(text)
    return text or None


def storage_key(prefix: str, policy_name: str, identity: str) -> str:
    """Client input never reaches Redis as is: it is normalised and hashed into the key."""
    if len(identity) <= CACHED_IDENTITY:
        return _cached_key(prefix, policy_name, identity)
    return _key(prefix, policy_name, identity)


@functools.lru_cache(maxsize=8192)  # a client's identities recur; hashing costs more than the lookup
def _cached_key(prefix: str, policy_name: str, identity: str) -> str:
    return _key(prefix, policy_name, identity)


def _key(prefix: str, policy_name: str, identity: str) -> str:
    digest = hashlib.sha256(normalise(identity).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{prefix}:{KEY_SCHEMA}:{HASH_TAG}:{_name_hash(policy_name)}:{digest}"


@functools.lru_cache(maxsize=1024)
def _name_hash(policy_name: str) -> str:
    return hashlib.sha256(policy_name.encode("utf-8", "surrogatepass")).hexdigest()[:12]


@functools.cache
def _redis_breaker() -> Any:
    """Guards Redis for rate limiting: after a few failures, decide without it at once; probe every second.
    One handle for the process (it re-resolves its breaker by itself when settings change)."""
    return circuit_breaker(REDIS_BREAKER, minimum_calls=3, failure_rate=50, window=10, open_for=1.0, half_open_calls=1)


class Limiter:
    """Decides a request's limits in one call: Redis when configured (through a breaker), else in process."""

    def __init__(self, redis_store: RedisRateLimitStore | None) -> None:
        self.redis = redis_store
        self.local = MemoryRateLimitStore()

    def hit(self, policies: list[tuple[RatePolicy, str]], prefix: str, cost: int = 1) -> Decision:
        """``policies``: (policy, identity) pairs; all are decided together, all or nothing. A policy
        whose name starts with ``check:`` is only looked at (cost 0): it refuses, it never consumes."""
        if not policies:
            return Decision(True, ())
        limits, refuse_all = [], False
        for p, identity in policies:
            limits.append(p.limit(identity, prefix, 0 if p.name.startswith("check:") else cost))
            refuse_all = refuse_all or not p.rate
        if refuse_all:  # a rate of 0 refuses without asking the store, and consumes nothing elsewhere
            return self._report(Decision(False, tuple(_refused(limit) for limit in limits if not limit.rate)), policies)
        decision = self.local.hit(limits) if self.redis is None else self._remote(limits, policies)
        return self._report(decision, policies)

    def _remote(self, limits: list[Limit], policies: list[tuple[RatePolicy, str]]) -> Decision:
        assert self.redis is not None
        try:
            return _redis_breaker().call(self.redis.hit, limits)  # type: ignore[no-any-return]
        except (CircuitOpenError, ConnectionError, TimeoutError, OSError) as exc:
            reason = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - redis errors: decided by the policies' fail modes
            reason = type(exc).__name__
        modes = {p.fail for p, _ in policies}
        mode = "closed" if "closed" in modes else "local" if "local" in modes else "open"
        emit(Event("ratelimit", "store_unavailable", ",".join(p.name for p, _ in policies), {"fail": mode, "error": reason}))
        if mode == "local":
            return self.local.hit(limits)
        if mode == "closed":
            return Decision(False, tuple(_refused(limit) for limit in limits))
        return Decision(True, ())

    def penalise(self, rule: RatePolicy, identity: str, prefix: str, max_wait: float = 86_400.0) -> None:
        """Record one failure against ``rule`` for ``identity`` (progressive cool-off); never raises."""
        limit = rule.limit(identity, prefix, 0)
        counter = storage_key(prefix, f"{rule.key_name}:failures", identity)
        window = int(max(rule.period * 24, 3600))
        if self.redis is not None:
            try:
                _redis_breaker().call(self.redis.penalise, limit, counter, window, max_wait)
                return
            except Exception as exc:  # noqa: BLE001 - Redis down: remember it in this process at least
                emit(Event("ratelimit", "store_unavailable", rule.name, {"fail": "local", "error": type(exc).__name__}))
        self.local.penalise(limit, counter, window, max_wait)

    def forgive(self, rule: RatePolicy, identity: str, prefix: str) -> None:
        """Clear ``identity``'s failures against ``rule`` (after a successful login)."""
        keys = (rule.limit(identity, prefix, 0).key, storage_key(prefix, f"{rule.key_name}:failures", identity))
        self.local.forget(*keys)
        if self.redis is not None:
            try:
                _redis_breaker().call(self.redis.forget, *keys)
            except Exception:  # noqa: BLE001 - the cool-off then just runs out by itself
                pass

    def _report(self, decision: Decision, policies: list[tuple[RatePolicy, str]]) -> Decision:
        if decision.allowed:
            return decision
        refusing = {s.limit.policy for s in decision.states if not s.allowed}
        names = ",".join(p.name for p, _ in policies if p.name in refusing) or ",".join(p.name for p, _ in policies)
        if all(p.shadow for p, _ in policies):  # counted like enforcement, so the report is what enforcing would do
            emit(Event("ratelimit", "shadow_rejected", names, {"retry_after": round(decision.retry_after, 3)}))
            return Decision(True, decision.states)
        emit(Event("ratelimit", "rejected", names, {"retry_after": round(decision.retry_after, 3)}))
        return decision


def _refused(limit: Limit) -> LimitState:
    """A refusal without asking the store: fail-closed (retry in a second), or a rate of 0 (in a period)."""
    wait = CLOSED_RETRY_AFTER if limit.rate else limit.period
    return LimitState(limit, False, 0, wait, wait)
