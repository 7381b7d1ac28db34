"""Postgres through the fault proxy: connections cut mid-statement, cut while idle between requests,
black-holed; persistent connections (CONN_MAX_AGE) and Django 5's psycopg pool; several threads.
And ``statement_timeout`` never leaks: across autocommit and transactions, rollbacks, threads, pools.

Each test names, where it failed before the fix, what it did then."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.signals import request_finished, request_started
from django.db import DatabaseError, OperationalError, connection, connections, transaction

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.exceptions import DatabaseUnavailable
from resilience.integrations.postgres import ReplicaRouter
from resilience.integrations.postgres.guards import breaker_for
from tests.conftest import needs_django_pool
from tests.faults.proxy import FaultProxy
from tests.pg import fast_retries, scratch_table

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    fast_retries(settings, minimum_calls=50, failure_rate=90, open_for=30)


@pytest.fixture
def table():
    with scratch_table("chaos", "id serial PRIMARY KEY, key text, n int") as name:
        yield name


def rows(key=None):
    with connection.cursor() as c:
        if key is None:
            c.execute("SELECT key, count(*) FROM chaos GROUP BY key")
            return dict(c.fetchall())
        c.execute("SELECT count(*) FROM chaos WHERE key = %s", (key,))
        return c.fetchone()[0]


_ALIASES = []


class Alias:
    """A database alias through a fault proxy, usable from every thread: each thread gets its own
    wrapper (as Django gives each thread its own connection), created at run time — Django's test
    case allows such dynamically created connections."""

    def __init__(self, name, **overrides):
        self.name = name
        self.proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
        self.settings_dict = {**connection.settings_dict, "PORT": str(self.proxy.port), **overrides}
        _ALIASES.append(self)

    @property
    def db(self):
        from resilience.backends.postgresql.base import DatabaseWrapper

        wrapper = getattr(connections._connections, self.name, None)
        if wrapper is None:
            wrapper = connections[self.name] = DatabaseWrapper(self.settings_dict, self.name)
        return wrapper

    def request(self, fn):
        """``fn`` as one request of a WSGI server: Django's request signals around it (they close
        connections that are obsolete or had errors), and the thread's connection kept after it."""
        request_started.send(sender=None)
        try:
            return fn()
        finally:
            request_finished.send(sender=None)
            self.db.close_if_unusable_or_obsolete()  # what the signals do for the aliases in DATABASES

    def close_thread(self):
        wrapper = getattr(connections._connections, self.name, None)
        if wrapper is not None:
            wrapper.close()
            delattr(connections._connections, self.name)

    def close(self):
        db = self.db
        pool = getattr(db, "pool", None)  # Django 5.1+
        self.close_thread()
        if pool is not None:
            pool.close()
            type(db)._connection_pools.pop(self.name, None)
        self.proxy.close()
        _ALIASES.remove(self)


def close_thread_connections():
    for alias in list(_ALIASES):
        alias.close_thread()
    connections.close_all()


@pytest.fixture
def persistent():
    alias = Alias("persistent", CONN_MAX_AGE=60, OPTIONS={"connect_timeout": 2})
    yield alias
    alias.close()


@pytest.fixture
def pooled():
    needs_django_pool()
    alias = Alias("pooled", CONN_MAX_AGE=0, OPTIONS={"pool": {"min_size": 2, "max_size": 2, "timeout": 2}})
    yield alias
    alias.close()


@pytest.fixture(params=["persistent", "pooled"])
def reused(request):
    """Both ways a connection outlives a request."""
    return request.getfixturevalue(request.param)


def select(alias, sql="SELECT 42", params=None):
    with alias.db.cursor() as c:
        c.execute(sql, params)
        return c.fetchone()[0]


def insert(alias, key, sql="INSERT INTO chaos (key, n) VALUES (%s, 1)"):
    with alias.db.cursor() as c:
        c.execute(sql, (key,))


def in_thread(fn, timeout=10):
    """Run ``fn`` in its own thread (own connections, closed after); its result or its error, or
    ``TimeoutError`` when it is still stuck after ``timeout`` (it is left behind, daemonic)."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            close_thread_connections()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"still running after {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["result"]


# -- cut between requests (idle persistent / pooled connections) ---------------------------------
def test_a_read_under_a_deadline_survives_a_cut_between_requests(reused):
    """Before: set_config ran on the raw cursor; its psycopg.OperationalError escaped unclassified
    and was retried three times on the same dead connection (a 500)."""
    assert reused.request(lambda: select(reused)) == 42
    reused.proxy.cut()

    def read():
        with deadline(5):
            return select(reused)

    assert reused.request(read) == 42


def test_a_write_after_a_cut_between_requests_is_applied_once(reused, table):
    """A connection cut while idle is found before anything is sent on it (a poll of the socket),
    so a write is safe on a new one. Before: the INSERT failed (a 500) and nothing was written."""
    reused.request(lambda: insert(reused, "before"))
    reused.proxy.cut()
    reused.request(lambda: insert(reused, "after"))
    assert rows() == {"before": 1, "after": 1}


def test_a_transaction_after_a_cut_between_requests_runs_on_a_new_connection(reused, table):
    reused.request(lambda: select(reused))
    reused.proxy.cut()

    def transfer():
        with transaction.atomic(using=reused.name):
            insert(reused, "tx")
            insert(reused, "tx")

    reused.request(transfer)
    assert rows() == {"tx": 2}


def test_every_thread_recovers_after_a_cut(reused, table):
    """Four threads, each with its own persistent (or pooled) connection, all cut at once."""

    def work(n):
        reused.request(lambda: select(reused))
        barrier.wait(5)  # all four hold a connection...
        if n == 0:
            reused.proxy.cut()  # ...when they are all cut
        barrier.wait(5)
        reused.request(lambda: insert(reused, f"k{n}"))
        with deadline(5):
            return reused.request(lambda: select(reused, "SELECT count(*) FROM chaos WHERE key = %s", (f"k{n}",)))

    barrier = threading.Barrier(2 if reused.name == "pooled" else 4)  # the pool holds two connections
    threads = 2 if reused.name == "pooled" else 4

    def run(n):
        try:
            return work(n)
        finally:
            close_thread_connections()

    with ThreadPoolExecutor(threads) as pool:
        assert list(pool.map(run, range(threads))) == [1] * threads
    assert rows() == {f"k{n}": 1 for n in range(threads)}


# -- cut mid-statement ---------------------------------------------------------------------------
def cut_after(proxy, seconds):
    timer = threading.Timer(seconds, proxy.cut)
    timer.start()
    return timer


def test_a_read_cut_mid_statement_is_retried_on_a_new_connection(reused):
    reused.request(lambda: select(reused))
    cut_after(reused.proxy, 0.3)
    with deadline(5):
        started = time.monotonic()
        assert reused.request(lambda: select(reused, "SELECT 42 FROM pg_sleep(0.6)")) == 42
    assert time.monotonic() - started < 3


def test_a_write_cut_mid_statement_is_a_clean_503_never_run_twice_and_the_next_request_works(reused, table):
    """Before: a plain OperationalError (a 500), and the dead connection stayed for the next request."""
    reused.request(lambda: insert(reused, "warm"))
    cut_after(reused.proxy, 0.3)
    with pytest.raises(DatabaseUnavailable) as caught:
        reused.request(lambda: insert(reused, "cut", "INSERT INTO chaos (key, n) SELECT %s, 1 FROM pg_sleep(0.6)"))
    assert isinstance(caught.value, CircuitOpenError) and isinstance(caught.value, OperationalError)
    assert caught.value.sent is True  # it may have been applied: the caller's idempotency key decides
    time.sleep(0.5)  # the server finishes (or abandons) the statement it was running
    assert rows("cut") <= 1  # never duplicated
    reused.request(lambda: insert(reused, "next"))
    assert rows("next") == 1


def test_a_transaction_cut_mid_way_is_a_clean_503_and_rolled_back(reused, table):
    reused.request(lambda: select(reused))

    def transfer():
        with transaction.atomic(using=reused.name):
            insert(reused, "tx")
            reused.proxy.cut()
            insert(reused, "tx")

    with pytest.raises(DatabaseUnavailable):
        reused.request(transfer)
    assert rows("tx") == 0
    assert reused.request(lambda: select(reused)) == 42


def test_a_read_on_a_connection_broken_by_an_earlier_statement_gets_a_new_one(persistent, table):
    """The statement that broke the connection is reported; the next cursor is made on a new
    connection. Before: create_cursor failed on the dead connection, before any retry could run."""
    persistent.request(lambda: select(persistent))

    def view():
        try:
            persistent.proxy.cut()
            insert(persistent, "lost")  # fails: the connection was lost under it
        except DatabaseError:
            pass
        return select(persistent)  # same request, same thread

    assert persistent.request(view) == 42


# -- the database goes away and comes back -------------------------------------------------------
def test_while_the_database_is_down_requests_fail_cleanly_and_recover_when_it_returns(reused, table, settings):
    """Pooled, before: each request waited for the pool's timeout (2 s, three times: PoolTimeout was
    retried), and the one after open_for until psycopg_pool's next attempt on its own backoff."""
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "BREAKERS": {"default": {"minimum_calls": 3, "failure_rate": 50, "open_for": 1}},
    }
    reused.request(lambda: select(reused))
    reused.proxy.down()
    started = time.monotonic()
    for _ in range(5):  # lost, then refused, then the breaker opens: all a 503, none a bare error
        with pytest.raises(CircuitOpenError):
            reused.request(lambda: insert(reused, "down"))
    assert time.monotonic() - started < 1
    assert breakers.get(f"postgres:{reused.name}").state == "open"
    reused.proxy.heal()
    time.sleep(1.1)  # open_for
    started = time.monotonic()
    reused.request(lambda: insert(reused, "back"))  # the half-open probe
    assert time.monotonic() - started < 0.5
    assert rows() == {"back": 1}


# -- Django's psycopg pool through an outage -----------------------------------------------------
def test_a_pool_starved_by_an_outage_serves_as_soon_as_postgres_is_back(pooled):
    """psycopg_pool re-connects on its own backoff (1 s, 2 s, 4 s ... from the first failure) and
    tells no waiting client that an attempt failed; ``check()`` cannot bring an attempt forward.
    Before: the request during the outage waited for the pool's timeout (2 s, three times), and the
    first one after it until the pool's next attempt, 3 s after its first failure."""
    pooled.request(lambda: select(pooled))
    old = pooled.db.pool
    pooled.proxy.down()
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        pooled.request(lambda: select(pooled))
    assert time.monotonic() - started < 1  # a direct connection was refused at once
    time.sleep(1.5)  # the pool's first retry (~1 s after its first failure) failed too
    pooled.proxy.heal()
    started = time.monotonic()
    assert pooled.request(lambda: select(pooled)) == 42
    assert time.monotonic() - started < 0.5
    assert pooled.db.pool is not old and old.closed  # replaced: the new pool connected at once


def test_a_pool_whose_connections_were_cut_is_kept(pooled):
    """Postgres is there: the pool re-makes the connections at once, and nothing is replaced."""
    pooled.request(lambda: select(pooled))
    old = pooled.db.pool
    pooled.proxy.cut()
    assert pooled.request(lambda: select(pooled)) == 42
    assert pooled.db.pool is old and not old.closed


def test_waiting_for_a_pooled_connection_ends_at_the_deadline():
    """Django calls ``getconn()`` without a timeout. Before: a request with 0.3 s left waited for the
    pool's 5 s timeout (three times: PoolTimeout was retried), and it counted against the breaker."""
    needs_django_pool()
    alias = Alias("pool1", CONN_MAX_AGE=0, OPTIONS={"pool": {"min_size": 1, "max_size": 1, "timeout": 5}})
    try:
        select(alias)  # this thread holds the pool's only connection
        pool = alias.db.pool

        def wait():
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded), deadline(0.3):
                select(alias)
            return time.monotonic() - started

        assert in_thread(wait, timeout=20) < 0.6
        assert breakers.get("postgres:pool1").stats().failures == 0  # the deadline's doing, not the database's
        assert alias.db.pool is pool  # busy, not in trouble: kept
    finally:
        alias.close()


# -- black hole: nothing comes back --------------------------------------------------------------
def test_a_black_holed_statement_ends_at_the_deadline(persistent):
    """The server never sees the statement, so its statement_timeout cannot fire: the client cuts
    the socket at the deadline (plus a grace). Before: the statement waited forever."""

    def scenario():
        persistent.request(lambda: select(persistent))  # connected
        persistent.proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), deadline(0.5):
            persistent.request(lambda: select(persistent))
        elapsed = time.monotonic() - started
        persistent.proxy.heal()
        return elapsed, persistent.request(lambda: select(persistent))  # a new connection, at once

    elapsed, answer = in_thread(scenario, timeout=5)
    assert elapsed < 1.2 and answer == 42


def test_connecting_into_a_black_hole_is_a_clean_503_bounded_by_connect_timeout(persistent):
    persistent.proxy.blackhole()
    started = time.monotonic()

    def read():
        with deadline(0.5):
            return select(persistent)

    with pytest.raises(DatabaseUnavailable):
        in_thread(read, timeout=10)
    assert time.monotonic() - started < 3  # libpq's connect_timeout: 2 s at least


# -- statement_timeout never leaks ---------------------------------------------------------------
def test_a_session_timeout_from_autocommit_does_not_cancel_a_later_transaction():
    """Before: the atomic block's statement ran under the 500 ms left by the earlier deadline."""
    with deadline(0.5), connection.cursor() as c:
        c.execute("SELECT 1")
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SHOW statement_timeout")
        assert c.fetchone()[0] == "0"
        c.execute("SELECT pg_sleep(0.7)")


def test_a_rolled_back_transaction_does_not_bring_the_session_timeout_back():
    with deadline(0.5), connection.cursor() as c:
        c.execute("SELECT 1")
    with pytest.raises(ZeroDivisionError), transaction.atomic(), connection.cursor() as c:
        c.execute("SELECT 1")
        1 / 0  # noqa: B018
    with connection.cursor() as c:
        c.execute("SHOW statement_timeout")
        assert c.fetchone()[0] == "0"


def test_a_local_timeout_does_not_outlive_its_deadline_inside_the_transaction():
    with transaction.atomic(), connection.cursor() as c:
        with deadline(0.5):
            c.execute("SELECT 1")
        c.execute("SELECT pg_sleep(0.7)")  # the deadline is over; the transaction goes on
        with deadline(5):
            c.execute("SELECT 1")
            with transaction.atomic():
                with deadline(0.5):
                    c.execute("SELECT 1")
                transaction.set_rollback(True)  # ROLLBACK TO SAVEPOINT
        c.execute("SHOW statement_timeout")
        assert c.fetchone()[0] == "0"


def test_a_pooled_connection_taken_by_another_thread_carries_no_timeout():
    needs_django_pool()
    """Before: the second thread got the first thread's 500 ms and never reset it."""
    alias = Alias("pool1", CONN_MAX_AGE=0, OPTIONS={"pool": {"min_size": 1, "max_size": 1, "timeout": 5}})
    try:

        def first():  # a statement under a deadline; then the connection goes back to the pool
            pid = select(alias, "SELECT pg_backend_pid()")
            _under_deadline(alias)
            return pid

        def second():
            pid = select(alias, "SELECT pg_backend_pid()")
            return pid, select(alias, "SHOW statement_timeout"), select(alias, "SELECT 1 FROM pg_sleep(0.7)")

        pid = in_thread(first)
        assert in_thread(second) == (pid, "0", 1)  # the same connection, without the timeout
    finally:
        alias.close()


def _under_deadline(alias):
    with deadline(0.5):
        return select(alias, "SELECT 1")


def test_a_persistent_connection_keeps_no_timeout_across_requests(persistent):
    persistent.request(lambda: _under_deadline(persistent))

    def later():
        with transaction.atomic(using=persistent.name):
            return select(persistent, "SHOW statement_timeout")

    assert persistent.request(later) == "0"


# -- several primaries ---------------------------------------------------------------------------
def test_the_router_sends_each_models_reads_to_its_own_primarys_replicas(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "DATABASE_REPLICAS": {"default": ["r1"], "billing": ["b1", "b2"]}}
    router = ReplicaRouter()

    class Obj:
        class _state:  # noqa: N801 - the shape of a model instance's state
            db = "b1"

    assert router.db_for_read(None) == "r1"  # no hint: the first primary
    assert router.db_for_read(None, using="billing") == "b1"  # before: "r1", the first primary's replica
    assert router.db_for_read(None, instance=Obj()) == "b1"  # loaded from billing's replica
    assert router.db_for_write(None, instance=Obj()) == "billing"  # before: "default"
    assert router.db_for_write(None, using="billing") == "billing"
    breaker_for("b1").force_open()
    assert router.db_for_read(None, using="billing") == "b2"
    breaker_for("b2").force_open()
    assert router.db_for_read(None, using="billing") == "billing"
    assert router.db_for_read(None, using="elsewhere") is None  # not ours: left to Django
    assert router.allow_migrate("b2", "resilience") is False
    assert router.allow_migrate("billing", "resilience") is None
