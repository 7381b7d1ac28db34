"""Django's psycopg pool (``OPTIONS["pool"]``, Django 5.1+) behind the backend: ``getconn`` bounded by
the deadline, and a pool starved by an outage replaced as soon as Postgres answers again.

psycopg_pool re-makes a lost connection in the background on its own backoff (1 s, 2 s, 4 s ...
with 10 % jitter, from the first failure, for ``reconnect_timeout``), and a client waiting in
``getconn`` is never told that an attempt failed: it waits for ``timeout``. After a 4 s outage the
next attempt came 3 s after Postgres was back. Nothing public brings a scheduled attempt forward:
``check()`` and ``drain()`` only look at connections *in* the pool (none: the pool is empty) and only
grow it when no attempt already holds the slot; ``resize()`` changes the configured size. So when a
connection is wanted from a pool with none idle that is in trouble (since it last handed one out,
connections came back broken, or its own attempts failed):

1. a direct connection (the alias's parameters, ``connect_timeout`` cut to the deadline by the
   caller) asks Postgres whether it is there. If not, that fails at once, as without a pool,
   instead of waiting out the pool's ``timeout``; if it is, it is closed at once;
2. if the pool's own attempts failed (it is waiting out its backoff), the pool is replaced (Django's
   ``close_pool()``): the new one connects at once. A pool is replaced at most once per
   ``RESTART_INTERVAL`` (psycopg_pool's own first retry comes 1 s after a failure), so a pool that
   fails where a direct connection works (a ``configure`` error) is not replaced on every request.

Replacing a pool closes its idle connections; those in use are closed as they are returned
(psycopg_pool's rule for a closed pool), and a thread waiting in the old pool's ``getconn`` gets
``PoolClosed``, a lost connection that the caller's ``postgres_connect`` retry sends to the new pool.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from resilience.core.deadline import remaining
from resilience.exceptions import DeadlineExceeded
from resilience.integrations.postgres.timeouts import session_timeout_unknown

RESTART_INTERVAL = 1.0  # seconds: a pool is replaced at most this often
CLOSE_WAIT = 0.1  # seconds for the old pool's threads to stop; one busy connecting is left to finish

_lock = threading.Lock()
_ERRORS, _TROUBLE, _BORN = 0, 1, 2
_seen: weakref.WeakKeyDictionary[Any, list[float]] = weakref.WeakKeyDictionary()


def _record(pool: Any) -> list[float]:
    """[connect errors, broken returns + lost connections, both counted when it last handed a
    connection out; when first seen]."""
    record = _seen.get(pool)
    return record if record is not None else _seen.setdefault(pool, [0, 0, time.monotonic()])


def _counts(stats: dict[str, int]) -> tuple[int, int]:
    errors = stats.get("connections_errors", 0)
    return errors, errors + stats.get("returns_bad", 0) + stats.get("connections_lost", 0)


def in_trouble(pool: Any) -> tuple[bool, bool]:
    """(in trouble, its own connection attempts failed): no idle connection, and since it last
    handed one out connections came back broken or its attempts failed. From ``get_stats()``, 1 µs."""
    stats = pool.get_stats()
    record = _record(pool)
    errors, trouble = _counts(stats)
    if trouble < record[_TROUBLE]:  # the counters were reset (pop_stats)
        record[_ERRORS], record[_TROUBLE] = errors, trouble
    idle = stats.get("pool_available", 0) > 0
    return not idle and trouble > record[_TROUBLE], not idle and errors > record[_ERRORS]


def handed_out(pool: Any) -> None:
    """The pool gave a connection: its trouble so far is over."""
    record = _record(pool)
    record[_ERRORS], record[_TROUBLE] = _counts(pool.get_stats())


def replace(db: Any, pool: Any) -> None:
    """Close ``pool`` and let Django make a new one for the alias, unless it was replaced already
    or is younger than ``RESTART_INTERVAL``."""
    with _lock:
        if db.pool is not pool or time.monotonic() - _record(pool)[_BORN] < RESTART_INTERVAL:
            return
        pool.close(timeout=CLOSE_WAIT)  # Django's close_pool() would wait 5 s for a thread still connecting
        try:
            db.close_pool()  # the pool is closed already: this only drops it from Django's pools
        except KeyError:  # Django's own close_pool() (a settings change) dropped it meanwhile
            pass


def getconn(db: Any, conn_params: dict[str, Any]) -> Any:
    """A connection from the alias's pool, within the deadline. A pool in trouble first has a direct
    connection ask Postgres (its error is raised when Postgres is away), and is replaced when it is
    waiting out its own reconnect backoff."""
    pool = db.pool
    trouble, backing_off = in_trouble(pool)
    if trouble:
        db.Database.connect(**conn_params).close()  # raises when Postgres is still away
        if backing_off:
            replace(db, pool)
            pool = db.pool
    pool.open()  # a no-op once open (Django opens it on first use too)
    wait, by_deadline = pool.timeout, False
    left = remaining()
    if left is not None and left < wait:
        wait, by_deadline = left, True
    from psycopg_pool import PoolTimeout

    try:
        connection = pool.getconn(timeout=wait)
    except PoolTimeout as exc:
        if by_deadline:
            raise DeadlineExceeded("no connection from the pool before the deadline") from exc
        raise
    handed_out(pool)
    if "reset" in (db.settings_dict.get("OPTIONS", {}).get("pool") or {}):  # it may have RESET our timeout
        session_timeout_unknown(connection)
    return connection
