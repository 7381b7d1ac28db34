"""resilience.backends.postgresql on real Postgres: deadlines, breakers, safe retries, conflicts, faults."""

import threading
import time

import pytest
from django.db import DatabaseError, connection, connections, transaction

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.integrations.postgres import ReplicaRouter, retry_transaction, transaction_attempts
from resilience.integrations.postgres.guards import breaker_for
from tests.conftest import free_port, needs_django_pool
from tests.faults.proxy import FaultProxy
from tests.pg import fast_retries, scratch_table
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast(settings):
    fast_retries(settings, minimum_calls=3, failure_rate=50, open_for=30)


@pytest.fixture
def table():
    with scratch_table("ledger", "id serial PRIMARY KEY, account int, amount int") as name:
        yield name


def extra_alias(alias, **overrides):
    """Another alias on the test database (optionally through a proxy), created at run time: Django's
    test case allows such dynamically created connections."""
    from resilience.backends.postgresql.base import DatabaseWrapper

    settings_dict = {**connection.settings_dict, **overrides}
    wrapper = DatabaseWrapper(settings_dict, alias)
    connections[alias] = wrapper
    return wrapper


@pytest.fixture
def proxied():
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    db = extra_alias("proxied", PORT=str(proxy.port))
    yield db, proxy
    db.close()
    proxy.close()
    del connections["proxied"]


def count(table_name, using="default"):
    with connections[using].cursor() as c:
        c.execute(f"SELECT count(*) FROM {table_name}")
        return c.fetchone()[0]


def timed(fn):
    started = time.monotonic()
    try:
        fn()
    finally:
        timed.elapsed = time.monotonic() - started


@pytest.mark.parametrize("in_atomic", [False, True])
def test_a_statement_longer_than_the_deadline_is_cancelled_on_time(in_atomic):
    def slow():
        with deadline(0.3), connection.cursor() as c:
            if in_atomic:
                with transaction.atomic():
                    c.execute("SELECT pg_sleep(3)")
            else:
                c.execute("SELECT pg_sleep(3)")

    with pytest.raises(DeadlineExceeded):
        timed(slow)
    assert timed.elapsed < 0.8


def test_the_deadline_timeout_does_not_leak_into_later_statements():
    with deadline(5), connection.cursor() as c:
        c.execute("SELECT 1")
    with connection.cursor() as c:
        c.execute("SHOW statement_timeout")
        assert c.fetchone()[0] == "0"
        c.execute("SELECT pg_sleep(0.1)")  # would fail with a leaked 5 s? no - but a leaked small one would


@pytest.mark.parametrize("call", ["callproc", "copy"])
def test_a_deadlines_timeout_never_cancels_a_later_callproc_or_copy(call):
    """Found by a README audit: callproc and COPY bypass Django's execute wrappers, so the session
    timeout an earlier statement set under a deadline cancelled them later, with no deadline at all."""
    with deadline(0.3), connection.cursor() as c:
        c.execute("SELECT 1")  # sets (and keeps) a session statement_timeout of ~0.29 s
    started = time.monotonic()
    with connection.cursor() as c:
        if call == "callproc":
            c.callproc("pg_sleep", [0.5])
        else:
            with c.copy("COPY (SELECT pg_sleep(0.5)) TO STDOUT") as copy:
                list(copy)
    assert time.monotonic() - started >= 0.5  # ran to its end
    with deadline(0.2), connection.cursor() as c, pytest.raises(DeadlineExceeded):  # bounded like any statement
        if call == "callproc":
            c.callproc("pg_sleep", [1])
        else:
            with c.copy("COPY (SELECT pg_sleep(1)) TO STDOUT") as copy:
                list(copy)
    with connection.cursor() as c:
        c.execute("SELECT 1")  # the connection is still usable


@pytest.mark.parametrize(("sql", "read"), [
    ("SELECT 1", True), ("(SELECT 1)", True), ("EXPLAIN SELECT 1", True), ("SELECT into_date FROM t", True),
    ("EXPLAIN ANALYZE DELETE FROM t", False), ("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", False),
    ("SELECT *\nINTO copy FROM t", False), ("SELECT *\tINTO copy FROM t", False), ("INSERT INTO t VALUES (1)", False),
])  # fmt: skip
def test_only_statements_that_write_nothing_count_as_reads_and_may_be_sent_again(sql, read):
    """Found by a README audit: EXPLAIN ANALYZE of a write (which runs it) and SELECT ... INTO after a
    newline or a tab counted as reads, so a lost connection could run them twice."""
    from resilience.integrations.postgres.guards import is_read

    assert is_read(sql) is read


class _Sent:
    """What the client sent Postgres (libpq's own protocol trace of the connection)."""

    def __init__(self, db):
        import tempfile

        self.raw, self.file = db.connection, tempfile.TemporaryFile()

    def __enter__(self):
        self.raw.pgconn.trace(self.file.fileno())
        return self

    def __exit__(self, *exc):
        self.raw.pgconn.untrace()

    def statements(self, text):
        self.file.seek(0)
        sent = [line for line in self.file.read().decode().splitlines() if "\tF\t" in line]
        return [line for line in sent if ("\tQuery\t" in line or "\tParse\t" in line) and text in line]


def _shown_timeout_ms(c):
    c.execute("SHOW statement_timeout")
    shown = c.fetchone()[0]
    return int(shown[:-2]) if shown.endswith("ms") else int(float(shown[:-1]) * 1000)


def test_statements_under_the_same_route_deadline_reuse_the_session_timeout_without_a_round_trip():
    connection.ensure_connection()
    with _Sent(connection) as sent:
        for _ in range(5):  # five requests, each under a 2 s deadline, one query each
            with deadline(2.0), connection.cursor() as c:
                c.execute("SELECT 1")
    assert len(sent.statements("set_config")) == 1
    assert len(sent.statements("SELECT 1")) == 5


def test_the_session_timeout_is_the_time_left_rounded_down_never_above_it():
    with deadline(2.0), connection.cursor() as c:
        assert 1900 <= _shown_timeout_ms(c) <= 2000  # within 5 % (at most 100 ms) below
    with deadline(0.5), connection.cursor() as c:  # less time left than the timeout in force: set again
        assert 475 <= _shown_timeout_ms(c) <= 500
    with deadline(0.02), connection.cursor() as c:
        assert 19 <= _shown_timeout_ms(c) <= 20
    with connection.cursor() as c:
        assert c.execute("SHOW statement_timeout") and c.fetchone()[0] == "0"  # no deadline: none of ours


def test_no_statement_is_sent_once_the_deadline_has_passed(table):
    with deadline(0.0), pytest.raises(DeadlineExceeded), connection.cursor() as c:
        c.execute("INSERT INTO ledger (account, amount) VALUES (1, 1)")
    assert count("ledger") == 0


def test_statement_errors_do_not_count_against_the_breaker():
    for _ in range(5):
        with pytest.raises(DatabaseError), connection.cursor() as c:
            c.execute("SELECT * FROM no_such_table")
    assert breakers.get("postgres:default").state == "closed"


def test_a_real_serialization_conflict_is_retried_to_success(table):
    barrier = threading.Barrier(2)
    attempts = []

    @retry_transaction
    def book(account):
        attempts.append(account)
        rerun = len(attempts) > 2
        if rerun:  # before its snapshot (the first SELECT): a re-run seeing the winner's row cannot conflict again
            committed.wait(5)
        with connection.cursor() as c:
            c.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
            c.execute("SELECT coalesce(sum(amount), 0) FROM ledger")
            total = c.fetchone()[0]
            if not rerun:
                barrier.wait(5)  # both first attempts read before either writes: write skew
            c.execute("INSERT INTO ledger (account, amount) VALUES (%s, %s)", (account, total + 1))

    errors = []
    committed = threading.Event()

    def worker(account):
        try:
            book(account)
            committed.set()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert count("ledger") == 2  # both committed exactly once
    assert len(attempts) == 3  # one of them was re-run after a 40001


def test_transaction_attempts_as_a_loop(table):
    for attempt in transaction_attempts():
        with attempt, connection.cursor() as c:
            c.execute("INSERT INTO ledger (account, amount) VALUES (1, 1)")
    assert count("ledger") == 1


def test_retry_transaction_refuses_to_nest():
    with transaction.atomic(), pytest.raises(transaction.TransactionManagementError, match="outermost"):
        retry_transaction(lambda: None)()


def test_errors_that_are_not_conflicts_are_not_retried(table):
    calls = []

    @retry_transaction
    def broken():
        calls.append(1)
        with connection.cursor() as c:
            c.execute("INSERT INTO ledger (account, amount) VALUES ('x', 1)")

    with pytest.raises(DatabaseError):
        broken()
    assert calls == [1]


def test_a_read_outside_a_transaction_survives_a_cut_connection(proxied):
    db, proxy = proxied
    with db.cursor() as c:
        c.execute("SELECT 1")
    proxy.cut()
    with db.cursor() as c:
        c.execute("SELECT 42")
        assert c.fetchone()[0] == 42


def test_a_write_over_a_cut_connection_is_not_retried_and_never_duplicated(proxied, table):
    db, proxy = proxied
    with db.cursor() as c:
        c.execute("INSERT INTO ledger (account, amount) VALUES (1, 1)")
    threading.Timer(0.2, proxy.cut).start()  # mid-statement: it may have been applied
    with pytest.raises(DatabaseError), db.cursor() as c:
        c.execute("INSERT INTO ledger (account, amount) SELECT 2, 2 FROM pg_sleep(0.5)")
    db.close()
    time.sleep(0.5)  # the server ends the statement it was running
    assert count("ledger") <= 2  # at most once (a connection cut while idle is replaced before the
    # write is sent: tests/integrations/postgres/test_faults.py)


def test_reads_inside_atomic_are_not_retried_statement_by_statement(proxied):
    db, proxy = proxied
    with pytest.raises(DatabaseError), transaction.atomic(using="proxied"):
        with db.cursor() as c:
            c.execute("SELECT 1")
            proxy.cut()
            c.execute("SELECT 2")
    db.close()


def test_writes_through_a_slow_network_are_applied_exactly_once(proxied, table):
    db, proxy = proxied
    proxy.slow(0.02)
    for n in range(10):
        with db.cursor() as c:
            c.execute("INSERT INTO ledger (account, amount) VALUES (%s, 1)", (n,))
    proxy.heal()
    assert count("ledger") == 10


def test_connection_failures_open_the_aliases_breaker():
    db = extra_alias("dead", PORT=str(free_port()), OPTIONS={"connect_timeout": 2})
    try:
        with pytest.raises(DatabaseError):
            db.ensure_connection()  # three refused attempts (the postgres_connect policy): 3 failures
        assert breakers.get("postgres:dead").state == "open"
        with pytest.raises(CircuitOpenError) as refused:  # rejected by the breaker, without connecting
            db.ensure_connection()
        assert refused.value.name == "postgres:dead" and 0 < refused.value.retry_after <= 30
    finally:
        del connections["dead"]


def test_router_reads_from_a_healthy_replica_and_falls_back_to_the_primary(settings, proxied):
    settings.RESILIENCE = {**settings.RESILIENCE, "DATABASE_REPLICAS": {"default": ["proxied"]}}
    router = ReplicaRouter()
    assert router.db_for_read(None) == "proxied"
    assert router.db_for_write(None) == "default"
    breaker_for("proxied").force_open()
    assert router.db_for_read(None) == "default"
    assert router.allow_migrate("proxied", "resilience") is False


@pytest.fixture
def pooled():
    needs_django_pool()
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    db = extra_alias("pooled", PORT=str(proxy.port), OPTIONS={"pool": {"min_size": 1, "max_size": 2, "timeout": 2}})
    yield db, proxy
    db.close()
    db.close_pool()
    proxy.close()
    del connections["pooled"]


def test_works_with_djangos_psycopg_connection_pool(pooled, table):
    db, proxy = pooled
    with db.cursor() as c:
        c.execute("INSERT INTO ledger (account, amount) VALUES (1, 1)")
    with deadline(0.3), pytest.raises(DeadlineExceeded), db.cursor() as c:
        c.execute("SELECT pg_sleep(3)")
    db.close()  # back to the pool; the session timeout must not travel with it
    with db.cursor() as c:
        c.execute("SHOW statement_timeout")
        assert c.fetchone()[0] == "0"
    proxy.cut()
    with db.cursor() as c:  # a pooled connection died: the read is retried on a fresh one
        c.execute("SELECT count(*) FROM ledger")
        assert c.fetchone()[0] == 1


def test_the_postgres_policys_attempt_timeout_bounds_statements_without_a_deadline(settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "RETRY": {"postgres": {"attempt_timeout": 0.2, "budget": None}}}
    started = time.monotonic()
    with pytest.raises(DatabaseError), connection.cursor() as c:
        c.execute("SELECT pg_sleep(3)")  # cancelled by statement_timeout: a plain error, no deadline passed
    assert time.monotonic() - started < 0.8


def _reset_all(conn):
    conn.execute("RESET ALL")


def test_a_pool_that_resets_its_connections_gets_the_deadlines_timeout_set_again():
    """The pool's ``reset`` callback clears the session behind our back: the timeout kept on the
    connection is no longer known to be in force, so the next statement under a deadline sets it."""
    needs_django_pool()
    db = extra_alias("resetting", OPTIONS={"pool": {"min_size": 1, "max_size": 1, "timeout": 2, "reset": _reset_all}})
    try:
        for _ in range(2):  # the second checkout is the same connection, reset by the pool
            with deadline(2.0), db.cursor() as c:
                assert 1900 <= _shown_timeout_ms(c) <= 2000
            db.close()  # back to the pool, which runs RESET ALL
    finally:
        db.close_pool()
        del connections["resetting"]


def test_the_watchdog_keeps_no_more_than_its_bound_of_disarmed_entries_behind_a_long_statement():
    from resilience.integrations.postgres.timeouts import COMPACT_AT, watchdog

    long_one = watchdog.arm(-1, 3600.0)  # a statement under an hour-long deadline, still running
    try:
        for _ in range(3 * COMPACT_AT):  # short statements, each done at once
            watchdog.disarm(watchdog.arm(-1, 3600.0))
        assert wait_for(lambda: len(watchdog._heap) <= COMPACT_AT + 1, timeout=2.0)
    finally:
        watchdog.disarm(long_one)
