"""What the Postgres tests share: fast retry policies and a scratch table of their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection


def fast_retries(settings: Any, **breaker_defaults: Any) -> None:
    """Postgres retry policies that wait milliseconds, and the given default breaker settings."""
    settings.RESILIENCE = {
        "HISTORY": False,
        "RETRY": {
            name: {"base": 0.001, "cap": 0.01, "budget": None}
            for name in ("postgres", "postgres_transaction", "postgres_connect")
        },
        "BREAKERS": {"default": breaker_defaults},
    }


@contextmanager
def scratch_table(name: str, columns: str) -> Iterator[str]:
    """``CREATE TABLE name (columns)``, empty, dropped afterwards."""
    with connection.cursor() as c:
        c.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        c.execute(f"TRUNCATE {name}")
    try:
        yield name
    finally:
        with connection.cursor() as c:
            c.execute(f"DROP TABLE IF EXISTS {name}")
