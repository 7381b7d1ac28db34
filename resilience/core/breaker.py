"""The circuit breaker: decides locally while closed, asks the shared store otherwise.

A call through a closed breaker touches only process memory (the store's cached view and this
breaker's sliding window); the store is consulted when the breaker is not closed, when the
window crosses a threshold, and when a half-open probe finishes.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from resilience.core.breaker_config import BreakerConfig
from resilience.core.breaker_generators import AsyncGeneratorCall, GeneratorCall
from resilience.core.breaker_state import Outcome, State, StateView
from resilience.core.clock import SYSTEM_CLOCK, Clock
from resilience.core.deadline import remaining
from resilience.core.event import Event, EventSink, discard
from resilience.core.windows import CountWindow, TimeWindow, Window, WindowSnapshot
from resilience.core.wrapping import decorate
from resilience.exceptions import CallTimeout, CircuitOpenError, DeadlineExceeded

if TYPE_CHECKING:
    from resilience.core.ports import BreakerStore

T = TypeVar("T")
# Enum members as module constants: on Python 3.11 every ``State.X`` goes through
# ``EnumType.__getattr__`` (~100 ns), which dominated the closed-state hot path.
_CLOSED, _OPEN, _HALF_OPEN, _FORCED_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN, State.FORCED_OPEN
_SUCCESS, _FAILURE, _CANCEL = Outcome.SUCCESS, Outcome.FAILURE, Outcome.CANCEL
IGNORED = 2  # index of ignored calls (cancelled, ``ignore``d, cut by the deadline) in CircuitBreaker._totals
_PASS = (_CLOSED, State.DISABLED)
_CANCELLED = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class Ticket:
    """One admitted call: its generation, start time, and probe permit if it holds one."""

    __slots__ = ("gen", "started", "permit", "done", "timer")

    def __init__(self, gen: int, started: float, permit: str | None) -> None:
        self.gen, self.started, self.permit, self.done = gen, started, permit, False
        self.timer: Any = None  # the asyncio.timeout of an ``async with`` block


class CircuitBreaker:
    """Protects one dependency. Use as decorator, ``with``, ``async with`` or ``call()``."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        store: BreakerStore,
        *,
        clock: Clock = SYSTEM_CLOCK,
        emit: EventSink = discard,
    ) -> None:
        self.name = name
        self.config = config
        self._store = store
        self._view = store.view_reader()  # bound once: read on every call
        self._clock = clock
        self._emit = emit
        self._lock = threading.Lock()
        # Calls settled in this process since it started: [successful, failed, ignored] (rejections are
        # events). Plain integers under the lock the window takes anyway; exporters read call_totals().
        self._totals = [0, 0, 0]
        self._window: Window = self._new_window()
        self._window_gen = store.view(name).gen
        self._tickets: contextvars.ContextVar[list[Ticket]] = contextvars.ContextVar(f"breaker:{name}")
        store.register(name)

    # -- state -------------------------------------------------------------------------------
    def _new_window(self) -> Window:
        c = self.config
        return TimeWindow(c.window) if c.window_type == "time" else CountWindow(c.window)

    @property
    def state(self) -> str:
        """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled``, as every process sees it."""
        view = self._store.view(self.name)
        if view.state is State.OPEN and self._store.now() >= view.open_until:
            return State.HALF_OPEN.value  # the next call will probe
        return view.state.value

    def view(self) -> StateView:
        return self._store.view(self.name)

    def call_totals(self) -> tuple[int, int, int]:
        """(successful, failed, ignored) calls settled by this process through this breaker so far."""
        with self._lock:
            return (self._totals[0], self._totals[1], self._totals[2])

    def _total(self, index: int) -> None:
        with self._lock:
            self._totals[index] += 1

    def local_stats(self) -> WindowSnapshot:
        """This process's window counts for the current generation."""
        with self._lock:
            if self._window_gen != self._store.view(self.name).gen:
                return WindowSnapshot(0, 0, 0)
            return self._window.snapshot(self._clock.monotonic())

    def stats(self) -> WindowSnapshot:
        """Window counts across every process when the store shares them, else this process's."""
        shared = self._store.shared_stats(self.name)
        return shared if shared is not None else self.local_stats()

    def reset(self, actor: str | None = None) -> None:
        """Close the breaker in every process and clear its trip history."""
        self._manual("reset", actor)

    def force_open(self, actor: str | None = None) -> None:
        """Reject every call in every process until ``reset()``."""
        self._manual("force_open", actor)

    def disable(self, actor: str | None = None) -> None:
        """Let every call through and record nothing, in every process, until ``reset()``."""
        self._manual("disable", actor)

    def _manual(self, op: str, actor: str | None) -> None:
        old, view = self._store.manual(self.name, op)
        self._transition(old, view, reason=op, actor=actor)

    # -- decisions ---------------------------------------------------------------------------
    def admit(self) -> Ticket:
        """Let one call start now, or raise ``CircuitOpenError``; settle it with ``finish(ticket, exc)``."""
        view = self._view(self.name)
        if view.state in _PASS:
            return Ticket(view.gen, self._clock.monotonic(), None)
        if view.state is _OPEN:  # reject locally while the open period clearly runs
            wait = view.open_until - self._store.now()
            if wait > 0.05:
                self._reject(view, wait)
        permit = uuid.uuid4().hex
        decision = self._store.acquire(self.name, self.config, permit, self._permit_ttl())
        if decision.changed_from is not None:
            self._transition(decision.changed_from, decision.view, reason="open_for elapsed")
        if not decision.allowed:
            self._reject(decision.view, decision.retry_after)
        return Ticket(decision.view.gen, self._clock.monotonic(), permit if decision.probe else None)

    def _permit_ttl(self) -> float:
        c = self.config
        return max(c.timeout or 0.0, c.slow_call or 0.0, min(c.open_for, 60.0), 1.0) * 2

    def _reject(self, view: StateView, retry_after: float | None) -> None:
        retry = None if view.state is State.FORCED_OPEN else round(max(retry_after or 0.0, 0.0), 3)
        self._emit(Event("breaker", "rejected", self.name, {"state": view.state.value, "retry_after": retry}))
        raise CircuitOpenError(self.name, retry, view.state.value)

    def _outcome(self, exc: BaseException | None, started: float) -> Outcome:
        if exc is None:
            return _SUCCESS
        if isinstance(exc, _CANCELLED) or (self.config.ignore and isinstance(exc, self.config.ignore)):
            return _CANCEL
        if not isinstance(exc, CallTimeout) and cut_by_deadline(exc):
            # The caller's deadline ended the call: no evidence against the dependency, or a caller
            # with a short X-Request-Timeout could open a shared breaker for everyone. It counts only
            # as slow, and only if it had already run for ``slow_call`` (``_record`` times a success).
            slow_call = self.config.slow_call
            if slow_call is not None and self._clock.monotonic() - started >= slow_call:
                return _SUCCESS
            return _CANCEL
        return _FAILURE

    def _record(self, ticket: Ticket, outcome: Outcome) -> bool:
        """Count a closed-state call in the window; True when the window now calls for a trip."""
        if outcome is _CANCEL:
            self._total(IGNORED)
            return False
        slow_call = self.config.slow_call
        slow = slow_call is not None and self._clock.monotonic() - ticket.started >= slow_call
        return self._count(ticket.gen, outcome is _FAILURE, slow)

    def _count(self, gen: int, failure: bool, slow: bool) -> bool:
        """Add one call of generation ``gen`` to the window; True when the window now calls for a trip."""
        view = self._view(self.name)
        if view.gen != gen or view.state is not _CLOSED:
            self._total(failure)  # a call all the same, but of another generation: not in the current window
            return False
        now = self._clock.monotonic()
        with self._lock:
            self._totals[failure] += 1  # index 0: successful, 1: failed
            if self._window_gen != gen:
                self._window, self._window_gen = self._new_window(), gen
            calls, failures, slows = self._window.record(now, failure, slow)
        c = self.config
        if calls < c.minimum_calls or not (failures or slows):
            return False
        return failures * 100 >= c.failure_rate * calls or (c.slow_call is not None and slows * 100 >= c.slow_rate * calls)

    def finish(self, ticket: Ticket, exc: BaseException | None) -> None:
        """Settle a call: count it, trip the breaker or return a probe permit."""
        if ticket.done:
            return
        ticket.done = True
        outcome = self._outcome(exc, ticket.started)
        if ticket.permit is None:
            if self._record(ticket, outcome):
                self._trip(ticket.gen)
            return
        if outcome is _SUCCESS and self.config.slow_call is not None:
            if self._clock.monotonic() - ticket.started >= self.config.slow_call:
                outcome = _FAILURE  # a slow probe does not prove recovery
        self._total(IGNORED if outcome is _CANCEL else int(outcome is _FAILURE))
        old, view = self._store.release(self.name, self.config, ticket.gen, ticket.permit, outcome)
        self._transition(old, view, reason=f"probe {outcome.value}")

    def _trip(self, gen: int) -> None:
        stats = self.local_stats()
        old, view = self._store.trip(self.name, self.config, gen)
        if old is not None:
            with self._lock:
                if self._window_gen == gen:
                    # Spent: these calls opened the breaker. If the shared state comes back in this
                    # generation (the trip was local while Redis was unreachable), they must not
                    # trip it a second time; the next closed call starts a new window.
                    self._window_gen = -1
        self._transition(old, view, reason="threshold", stats=stats)

    def _transition(
        self, old: State | None, view: StateView, *, reason: str, actor: str | None = None, stats: WindowSnapshot | None = None
    ) -> None:
        if old is None:
            return
        stats = stats or self.local_stats()
        fields: dict[str, Any] = {
            "old_state": old.value,
            "new_state": view.state.value,
            "reason": reason,
            "generation": view.gen,
            "failure_rate": round(stats.failure_rate, 2),
            "slow_rate": round(stats.slow_rate, 2),
            "calls": stats.calls,
        }
        if view.state is State.OPEN:
            fields["open_for"] = round(max(view.open_until - view.since, 0.0), 3)
        if actor is not None:
            fields["actor"] = actor
        self._emit(Event("breaker", "transition", self.name, fields))

    # -- ways to call ------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` through the breaker (with the per-call ``timeout`` when configured)."""
        c = self.config
        if c.timeout is None and c.slow_call is None:  # the hot path: no timing needed
            view = self._view(self.name)
            if view.state is _CLOSED:
                gen = view.gen
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    self.finish(Ticket(gen, 0.0, None), exc)
                    raise
                if self._count(gen, False, False):  # reaching minimum_calls can trip on a success
                    self._trip(gen)
                return result
        ticket = self.admit()
        try:
            if self.config.timeout is not None:
                result = _run_with_timeout(self.name, self.config.timeout, fn, args, kwargs)
            else:
                result = fn(*args, **kwargs)
        except BaseException as exc:
            self.finish(ticket, exc)
            raise
        self.finish(ticket, None)
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` through the breaker; store round trips run off the event loop."""
        ticket = await self.aadmit()
        try:
            if self.config.timeout is not None:
                try:
                    async with asyncio.timeout(self.config.timeout):
                        result = await fn(*args, **kwargs)
                except TimeoutError as exc:
                    raise CallTimeout(self.name, self.config.timeout) from exc
            else:
                result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self.afinish(ticket, exc)
            raise
        await self.afinish(ticket, None)
        return result

    async def aadmit(self) -> Ticket:
        """``admit()`` for coroutines: a store round trip runs off the event loop."""
        view = self._view(self.name)
        if view.state in _PASS or not self._store.remote:
            return self.admit()
        return await asyncio.to_thread(self.admit)

    async def afinish(self, ticket: Ticket, exc: BaseException | None) -> None:
        """``finish()`` for coroutines: a store round trip runs off the event loop, a probe's even when cancelled."""
        if ticket.permit is None and not self._store.remote:
            self.finish(ticket, exc)
        elif ticket.permit is None:
            if ticket.done:  # settled already: count it once, as finish() does
                return
            outcome = self._outcome(exc, ticket.started)
            ticket.done = True
            if self._record(ticket, outcome):
                await asyncio.to_thread(self._trip, ticket.gen)
        else:
            # shield: a cancelled probe must still hand its permit back
            await asyncio.shield(asyncio.to_thread(self.finish, ticket, exc))

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a sync or async callable, or a (sync or async) generator function."""
        return decorate(fn, self.call, self.acall, watch=self.generator_call, awatch=self.async_generator_call)

    def generator_call(self) -> GeneratorCall:
        """One iteration of a sync generator as one call (see ``breaker_generators``)."""
        return GeneratorCall(self, self._clock)

    def async_generator_call(self) -> AsyncGeneratorCall:
        """One iteration of an async generator as one call (see ``breaker_generators``)."""
        return AsyncGeneratorCall(self, self._clock)

    def _push(self, ticket: Ticket) -> None:
        stack = self._tickets.get(None)
        self._tickets.set([*stack, ticket] if stack else [ticket])

    def _pop(self) -> Ticket:
        stack = self._tickets.get()
        self._tickets.set(stack[:-1])
        return stack[-1]

    def __enter__(self) -> CircuitBreaker:
        self._push(self.admit())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        ticket = self._pop()
        limit = self.config.timeout
        if exc is None and limit is not None and self._clock.monotonic() - ticket.started > limit:
            exc = CallTimeout(self.name, limit)  # a sync block cannot be interrupted: counted afterwards
        self.finish(ticket, exc)

    async def __aenter__(self) -> CircuitBreaker:
        ticket = await self.aadmit()
        if self.config.timeout is not None:
            ticket.timer = asyncio.timeout(self.config.timeout)
            await ticket.timer.__aenter__()
        self._push(ticket)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        ticket = self._pop()
        timed_out = False
        if ticket.timer is not None:
            try:
                await ticket.timer.__aexit__(exc_type, exc, tb)
            except TimeoutError:
                timed_out = True
                exc = CallTimeout(self.name, self.config.timeout or 0.0)
        await self.afinish(ticket, exc)
        if timed_out:
            raise exc  # type: ignore[misc]
        return False

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state}>"


def cut_by_deadline(exc: BaseException) -> bool:
    """True when ``exc`` ended a call because the current deadline ran out (not the breaker's own
    ``timeout``): a ``DeadlineExceeded``, or any error raised once the deadline has passed, such as
    the socket timeout an adapter cut to the time that was left."""
    return isinstance(exc, DeadlineExceeded) or remaining() == 0.0


def _run_with_timeout(name: str, timeout: float, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    """Run a sync callable in a helper thread and stop waiting after ``timeout`` seconds.

    Python cannot interrupt a thread, so the call itself runs on; the caller is released on
    time and the breaker counts the call as failed.
    """
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["result"] = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"breaker-{name[:40]}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CallTimeout(name, timeout)
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
