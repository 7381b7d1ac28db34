"""The limiter: one decision for all the limits of a request, and what to do when Redis fails.

Decisions go to Redis when ``RESILIENCE["REDIS"]`` is set (through the ``redis:ratelimit``
breaker), else to this process's own counters. When Redis fails, the policies' fail modes decide:
``closed`` if any policy says so, else ``local`` if any does, else ``open``. Every refusal and
every outage goes out as an event.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from typing import Any

from resilience.breakers.decorator import circuit_breaker
from resilience.conf import on_reload
from resilience.core.event import Event
from resilience.core.gcra import Limit, LimitState, RateDecision
from resilience.core.ports import RateLimitStore
from resilience.exceptions import CircuitOpenError
from resilience.observability.events import emit
from resilience.ratelimit.policies import RatePolicy
from resilience.storage import rate_limit_store
from resilience.storage.memory.ratelimit import MemoryRateLimitStore

REDIS_BREAKER = "redis:ratelimit"
CLOSED_RETRY_AFTER = 1.0  # seconds a fail-closed refusal asks the client to wait


@functools.cache
def _redis_breaker() -> Any:
    """Guards Redis for rate limiting: after five failures among a process's last ten decisions, decide
    without it at once; probe every second. A count window, not a time window: a stalled Redis fails
    each call only after ``REDIS_TIMEOUT``, so against a time window full of earlier successes the
    timeouts took seconds to weigh enough. One handle for the process (it re-resolves its breaker by
    itself when settings change)."""
    return circuit_breaker(
        REDIS_BREAKER, window_type="count", window=10, minimum_calls=3, failure_rate=50, open_for=1.0, half_open_calls=1
    )


class Limiter:
    """Decides a request's limits in one call: Redis when configured (through a breaker), else in process."""

    def __init__(self, redis_store: RateLimitStore | None) -> None:
        self.redis = redis_store
        self.local = MemoryRateLimitStore()
        # Admitted decisions by policy name since this limiter was built: no event per admitted
        # request (that is every request); metrics exporters read allowed_totals() off the path.
        self._allowed: Counter[str] = Counter()
        self._allowed_lock = threading.Lock()

    def allowed_totals(self) -> dict[str, int]:
        """Policy name -> decisions this limiter admitted with that policy among theirs."""
        with self._allowed_lock:
            return dict(self._allowed)

    def hit(self, policies: list[tuple[RatePolicy, str]], prefix: str, cost: int = 1) -> RateDecision:
        """``policies``: (policy, identity) pairs; all are decided together, all or nothing. A ``check:``
        policy (``RatePolicy.looks_only``) is only looked at (cost 0): it refuses, it never consumes."""
        if not policies:
            return RateDecision(True, ())
        limits, refuse_all = [], False
        for p, identity in policies:
            limits.append(p.limit(identity, prefix, 0 if p.looks_only else cost))
            refuse_all = refuse_all or p.refuses_all
        if refuse_all:  # a rate of 0 refuses without asking the store, and consumes nothing elsewhere
            decision = RateDecision(False, tuple(_refused(limit) for limit in limits if not limit.rate))
        else:
            decision = self.local.hit(limits) if self.redis is None else self._remote(limits, policies)
        if not decision.allowed and any(p.shadow for p, _ in policies):
            return self._shadowed(decision, policies, prefix, cost)
        return self._report(decision, policies)

    def _shadowed(self, decision: RateDecision, policies: list[tuple[RatePolicy, str]], prefix: str, cost: int) -> RateDecision:
        """A refusal of a decision with shadow policies among its own: shadow limits report and never
        refuse. Refused by shadow limits only, the request is decided again on the enforced ones
        alone (a second round trip, only then); the shadow limits consume nothing, as a refused
        request would not. Refused by an enforced limit, it is refused on that limit's terms."""
        shadow = {p.name for p, _ in policies if p.shadow}
        refusing = {s.limit.policy for s in decision.states if not s.allowed}
        shadow_refusing = ",".join(p.name for p, _ in policies if p.name in refusing and p.shadow)
        if shadow_refusing:
            emit(Event("ratelimit", "shadow_rejected", shadow_refusing, {"retry_after": round(decision.retry_after, 3)}))
        enforced = [(p, identity) for p, identity in policies if not p.shadow]
        if not refusing - shadow:  # only shadow limits refuse
            return self.hit(enforced, prefix, cost) if enforced else RateDecision(True, decision.states)
        return self._report(RateDecision(False, tuple(s for s in decision.states if s.limit.policy not in shadow)), enforced)

    def _remote(self, limits: list[Limit], policies: list[tuple[RatePolicy, str]]) -> RateDecision:
        assert self.redis is not None
        try:
            return _redis_breaker().call(self.redis.hit, limits)  # type: ignore[no-any-return]
        except (CircuitOpenError, ConnectionError, TimeoutError, OSError) as exc:
            reason = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - redis errors: decided by the policies' fail modes
            reason = type(exc).__name__
        # the enforced policies' fail modes decide; a shadow policy's never refuses nor changes how they count
        modes = {p.fail for p, _ in policies if not p.shadow} or {p.fail for p, _ in policies}
        mode = "closed" if "closed" in modes else "local" if "local" in modes else "open"
        emit(Event("ratelimit", "store_unavailable", ",".join(p.name for p, _ in policies), {"fail": mode, "error": reason}))
        if mode == "local":
            return self.local.hit(limits)
        if mode == "closed":
            return RateDecision(False, tuple(_refused(limit) for limit in limits))
        return RateDecision(True, ())

    def penalise(self, rule: RatePolicy, identity: str, prefix: str, max_wait: float = 86_400.0) -> None:
        """Record one failure against ``rule`` for ``identity`` (progressive cool-off); never raises."""
        limit = rule.limit(identity, prefix, 0)
        counter = rule.failures_key(identity, prefix)
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
        keys = (rule.limit(identity, prefix, 0).key, rule.failures_key(identity, prefix))
        self.local.forget(*keys)
        if self.redis is not None:
            try:
                _redis_breaker().call(self.redis.forget, *keys)
            except Exception:  # noqa: BLE001 - the cool-off then just runs out by itself
                pass

    def _report(self, decision: RateDecision, policies: list[tuple[RatePolicy, str]]) -> RateDecision:
        if decision.allowed:
            with self._allowed_lock:
                for p, _ in policies:
                    self._allowed[p.name] += 1
            return decision
        refusing = {s.limit.policy for s in decision.states if not s.allowed}
        names = ",".join(p.name for p, _ in policies if p.name in refusing) or ",".join(p.name for p, _ in policies)
        emit(Event("ratelimit", "rejected", names, {"retry_after": round(decision.retry_after, 3)}))
        return decision


def _refused(limit: Limit) -> LimitState:
    """A refusal without asking the store: fail-closed (retry in a second), or a rate of 0 (in a period)."""
    wait = CLOSED_RETRY_AFTER if limit.rate else limit.period
    return LimitState(limit, False, 0, wait, wait)


_limiter: list[Limiter] = []


def built_limiter() -> Limiter | None:
    """The process's limiter if a decision has built it (exporters must not build one)."""
    return _limiter[0] if _limiter else None


def limiter() -> Limiter:
    """The process's limiter, built from the settings once and again after they change."""
    if not _limiter:
        _limiter.append(Limiter(rate_limit_store()))
    return _limiter[0]


on_reload(_limiter.clear)
