"""The ``live_writes`` table behind ``/pg-write/`` (``tests.urls_live``), for the tests that run a real
gunicorn through Postgres faults: the database the server reaches through a fault proxy, and the
ledger that counts the rows written against the clients' idempotency keys.

``/pg-write/`` inserts one row per call and the table has no unique index, so a write the server
applied twice shows as two rows with one key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from django.db import connection

from .faults.proxy import FaultProxy


@pytest.fixture
def live_writes() -> Iterator[None]:
    """The table, empty; dropped afterwards. Use with ``@pytest.mark.usefixtures("live_writes")``."""
    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS live_writes (id serial PRIMARY KEY, key text NOT NULL, via text)")
        c.execute("TRUNCATE live_writes")
    yield
    with connection.cursor() as c:
        c.execute("DROP TABLE IF EXISTS live_writes")


def proxied_database(proxy: FaultProxy, kind: str = "persistent") -> dict[str, Any]:
    """The test database reached through ``proxy``: persistent connections, or Django's psycopg pool."""
    db = {**connection.settings_dict, "PORT": str(proxy.port), "TEST": {}}
    if kind == "persistent":
        return {**db, "CONN_MAX_AGE": 60, "OPTIONS": {"connect_timeout": 2}}
    return {**db, "CONN_MAX_AGE": 0, "OPTIONS": {"connect_timeout": 2, "pool": {"min_size": 1, "max_size": 1, "timeout": 2}}}


def write_ledger(writes: Iterable[tuple[str, Any]]) -> dict[str, int]:
    """``writes``: (idempotency key, status or "no answer: ...") of every write a client sent.

    Counts, against the rows in ``live_writes``: acknowledged writes (200) and how many of them are
    written exactly once, unacknowledged ones and how many of those were applied anyway, keys
    written more than once, and rows whose key no client sent."""
    writes = list(writes)
    with connection.cursor() as c:
        c.execute("SELECT key, count(*) FROM live_writes GROUP BY key")
        written = dict(c.fetchall())
    acknowledged = {key for key, status in writes if status == 200}
    unanswered = {key for key, status in writes if status != 200}
    return {
        "writes_acknowledged": len(acknowledged),
        "acknowledged_and_written_once": sum(written.get(key) == 1 for key in acknowledged),
        "not_acknowledged": len(unanswered),
        "not_acknowledged_but_applied": sum(key in written for key in unanswered),
        "keys_written_twice": sum(count > 1 for count in written.values()),
        "written_but_never_sent": len(set(written) - acknowledged - unanswered),
    }
