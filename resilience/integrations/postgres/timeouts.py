"""``statement_timeout`` set from the deadline, and the watchdog for networks that never answer.

What this library set is tracked on the psycopg connection itself, so that a pooled or persistent
connection carries it to whichever thread or ``DatabaseWrapper`` uses it next: it never leaks into a
later statement without a deadline, nor into a transaction. The server's timer cannot help when no
packet reaches it (a black-holed network), so a statement still waiting ``WATCHDOG_GRACE`` after
its deadline has its socket shut down and fails at once as a lost connection.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

_SESSION = "_resilience_session_timeout"  # the session-level statement_timeout of ours in force (ms), or falsy
_LOCAL = "_resilience_local_timeout"  # a transaction-local one may be in force in this transaction


def _run_raw(db: Any, raw_cursor: Any, sql: str, params: Any = None) -> None:
    with db.wrap_database_errors:  # Django's error classes, and errors_occurred set on the wrapper
        raw_cursor.execute(sql, params)


STEP_SHARE, MAX_STEP_MS = 40, 50  # session timeouts are set on a grid of 1/40 of the time left, at most 50 ms


def _step(milliseconds: int) -> int:
    return max(1, min(MAX_STEP_MS, milliseconds // STEP_SHARE))


def set_statement_timeout(db: Any, raw_cursor: Any, seconds: float, local: bool) -> None:
    """At most ``seconds`` for the next statement. A session-level timeout is set rounded down to a
    grid (1/40 of the time left, at most 50 ms) and kept while it is within two steps below the time
    left: requests under the same route deadline then reuse it, without a round trip per statement.
    It never exceeds the time left; it may end a statement up to 5 % (at most 100 ms) early."""
    milliseconds = max(int(seconds * 1000), 1)
    raw = db.connection
    if not local:
        step = _step(milliseconds)
        in_force = getattr(raw, _SESSION, 0)
        if in_force > 0 and milliseconds - 2 * step <= in_force <= milliseconds:
            return
        milliseconds -= milliseconds % step
    _run_raw(db, raw_cursor, "SELECT set_config('statement_timeout', %s, %s)", (str(milliseconds), local))
    setattr(raw, _LOCAL if local else _SESSION, True if local else milliseconds)


def clear_statement_timeout(db: Any, raw_cursor: Any, in_transaction: bool) -> None:
    """Before a statement without a deadline: no timeout of ours may remain in force."""
    raw = db.connection
    if in_transaction:
        if getattr(raw, _LOCAL, False):  # a session one is never in force inside a transaction
            _run_raw(db, raw_cursor, "SET LOCAL statement_timeout TO DEFAULT")
            setattr(raw, _LOCAL, False)
    elif getattr(raw, _SESSION, False):
        _run_raw(db, raw_cursor, "RESET statement_timeout")
        setattr(raw, _SESSION, False)


UNKNOWN = -1  # a timeout of ours may be in force, at a value not known: set or reset before the next statement


def session_timeout_unknown(raw: Any) -> None:
    """The session may have been reset behind our back (a pool's ``reset`` callback ran)."""
    if getattr(raw, _SESSION, False):
        setattr(raw, _SESSION, UNKNOWN)


def reset_session_timeout(db: Any) -> None:
    """Called by the backend as autocommit is turned off: a transaction must not start under a
    session-level timeout of ours (a RESET inside it would be undone by a rollback)."""
    raw = db.connection
    if raw is not None and getattr(raw, _SESSION, False):
        with db.wrap_database_errors:
            raw.execute("RESET statement_timeout")
        setattr(raw, _SESSION, False)


def transaction_ended(db: Any, *, savepoint_rollback: bool = False) -> None:
    """A ROLLBACK TO SAVEPOINT may bring back a local timeout; COMMIT/ROLLBACK end every local one."""
    raw = db.connection
    if raw is not None:
        setattr(raw, _LOCAL, savepoint_rollback)


WATCHDOG_GRACE = 0.25  # the server's cancellation gets this long to arrive after the deadline
COMPACT_AT = 4096  # entries (most of them disarmed) the watchdog's heap holds before it is compacted


class _Watchdog:
    """One thread per process that shuts down the socket of a statement still waiting past its
    deadline (plus ``WATCHDOG_GRACE``); the statement then fails at once as a lost connection."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[list[Any]] = []
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._wakes_at = 0.0  # when the thread wakes by itself: an entry due later needs no notify

    def arm(self, fd: int, seconds: float) -> list[Any]:
        entry = [time.monotonic() + seconds, next(self._seq), fd, False, True]  # at, seq, fd, fired, armed
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="resilience-pg-watchdog")
                self._thread.start()
            elif entry[0] < self._wakes_at or len(self._heap) > COMPACT_AT:  # due before the thread looks
                self._cond.notify()  # again (statements arm in order: one wake per deadline, not per statement)
        return entry

    def disarm(self, entry: list[Any]) -> bool:
        """Stop watching; True when the watchdog had already cut the connection."""
        with self._cond:  # the socket is never shut down after this returns (its fd may be reused)
            entry[4] = False
            return bool(entry[3])

    def _run(self) -> None:
        with self._cond:
            while True:
                if len(self._heap) > COMPACT_AT:  # disarmed entries behind a long one: drop them all
                    self._heap = [e for e in self._heap if e[4]]
                    heapq.heapify(self._heap)
                while self._heap and not self._heap[0][4]:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wakes_at = time.monotonic() + 60
                    if not self._cond.wait(60):
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wakes_at = self._heap[0][0]
                    self._cond.wait(wait)
                    continue
                entry = heapq.heappop(self._heap)
                entry[3], entry[4] = True, False
                try:
                    sock = socket.socket(fileno=os.dup(entry[2]))
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    finally:
                        sock.close()
                except OSError:
                    pass


watchdog = _Watchdog()


def socket_of(db: Any) -> int:
    """The file descriptor of ``db``'s socket."""
    with db.wrap_database_errors:  # a broken connection has no socket: a lost connection
        return int(db.connection.pgconn.socket)
