"""The Postgres ENGINE's cost per statement: ``SELECT 1`` through ``resilience.backends.postgresql``
(the alias's closed breaker, the ``postgres`` retry policy for reads, the watchdog, the session's
``statement_timeout`` under a deadline) against Django's own ``django.db.backends.postgresql`` on the
same server, measured in one process, in rotating interleaved rounds. Each variant keeps its own
persistent connection; the statement is the same, so what differs is the client's work around it.

    python benchmarks/postgres.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness  # noqa: E402

PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres", "NAME": "postgres", "CONN_MAX_AGE": None}


def setup_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="benchmark-only-not-secret",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "resilience"],
        DATABASES={
            "default": {**PG, "ENGINE": "django.db.backends.postgresql"},
            "guarded": {**PG, "ENGINE": "resilience.backends.postgresql"},
        },
        RESILIENCE={"HISTORY": False},
        LOGGING_CONFIG=None,
    )
    django.setup()


def variants() -> dict[str, harness.Variant]:
    from django.db import connections

    from resilience import deadline

    def statements(alias: str, seconds: float | None) -> Callable[[int], Any]:
        cursor = connections[alias].cursor()

        def run(n: int) -> Any:
            value = None
            if seconds is None:
                for _ in range(n):
                    cursor.execute("SELECT 1")
                    (value,) = cursor.fetchone()
                return value
            with deadline(seconds):  # one deadline around the batch: the statements' timeout comes from it
                for _ in range(n):
                    cursor.execute("SELECT 1")
                    (value,) = cursor.fetchone()
            return value

        return run

    return {
        "django": harness.Variant("Django's django.db.backends.postgresql", statements("default", None), 1, 200),
        "ours": harness.Variant("resilience.backends.postgresql", statements("guarded", None), 1, 200),
        "deadline": harness.Variant("resilience.backends.postgresql inside a deadline", statements("guarded", 3600.0), 1, 200),
    }


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    setup_django()
    started = time.perf_counter()
    found = variants()
    rounds, target = (3, 0.05) if quick else (15, 0.3)
    harness.measure(list(found.values()), rounds, target)
    django = found["django"]
    rows = []
    for key, v in found.items():
        extra = harness.paired_extra(v, django) if key != "django" else 0.0
        rows.append([v.name, harness.fmt_ns(v.median), f"{extra:+,.0f}" if key != "django" else "–",
                     f"{v.median / django.median:.2f}×"])  # fmt: skip
    print("## SELECT 1 per statement: the ENGINE against Django's own backend (ns, medians of interleaved rounds)\n")
    print(harness.table(["backend", "ns per statement", "added (paired)", "× Django"], rows, "lrrr"))
    print(f"\nTook {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
