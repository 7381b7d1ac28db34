"""Instructions per call, counted by valgrind's callgrind: a breakdown that a shared machine's noise
does not move, beside the timed benchmarks (which remain the result).

On the 2-core shared development machine the timed tables swing by up to 2× from one minute to the
next (steal time). Callgrind counts the instructions a process executes in user space: the same for
the same binary, inputs and environment, whatever else runs. The kernel's share is not counted, so
for a row doing I/O (each Redis or Postgres round trip) this is the client's own work only.

Each case runs in a child process under callgrind twice, with ``warm`` and with ``warm + n``
iterations; the difference over ``n`` is the table's figure (start-up, imports and warm-up cancel).

- ``breaker``: a successful call through a closed breaker, pybreaker in memory against ours with its
  state shared through Redis (``benchmarks/breaker.py``'s headline rows);
- ``request``: one request through Django's WSGI handler in this process, for each configuration of
  ``benchmarks/server.py`` (``none``, ``pings``, ``resilience``, ``drf``; the same view, ``SELECT 1``
  and 10,000 cycling clients), without the server and its HTTP.

    python benchmarks/instructions.py [--quick] [--redis redis://127.0.0.1:6379/14]

``--quick``: the breaker case only, few calls (about 20 s). Not run in CI, for valgrind's slowdown.
Without valgrind it says so and exits 0: it is a breakdown, not a target.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.MULTILINE)
REQUEST_CONFIGS = ("none", "pings", "resilience", "drf")


def fn() -> int:
    return 1


# -- what a child runs (under callgrind) -------------------------------------------------------
def _breaker_call(variant: str, redis_url: str) -> tuple[Callable[[Callable[[], int]], int], Callable[[], None]]:
    """The call to repeat, and what closes it."""
    if variant == "pybreaker":
        import pybreaker

        return pybreaker.CircuitBreaker().call, lambda: None
    import redis

    from resilience.core.breaker import CircuitBreaker
    from resilience.core.breaker_config import BreakerConfig
    from resilience.storage.redis.breaker import RedisBreakerStore

    store = RedisBreakerStore(redis.Redis.from_url(redis_url), prefix=os.environ["BENCH_PREFIX"])
    return CircuitBreaker("bench", BreakerConfig(), store).call, store.close


def _run_breaker(variant: str, iterations: int, redis_url: str) -> None:
    call, close = _breaker_call(variant, redis_url)
    try:
        for _ in range(iterations):
            call(fn)
    finally:
        close()


def _run_request(config: str, iterations: int) -> None:
    """``iterations`` GETs of ``/bench/`` through the WSGI handler of ``benchmarks/server_app``."""
    os.environ["BENCH_SERVER_CONFIG"] = config
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.server_app.settings"
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        if not status.startswith("200"):
            raise RuntimeError(f"{config}: {status}")
        return lambda data: None

    for k in range(iterations):
        client = k % 10_000
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/bench/", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http", "HTTP_X_FORWARDED_FOR": f"10.{client // 256 % 256}.{client % 256}.9",
            "HTTP_X_TENANT": f"tenant-{client}",
        }  # fmt: skip
        b"".join(application(environ, start_response))  # type: ignore[arg-type]


# -- the parent ----------------------------------------------------------------------------------
def instructions(case: str, variant: str, iterations: int, env: dict[str, str]) -> int:
    """User-space instructions of the main thread of a child running ``iterations`` of ``case``/``variant``
    (a background thread, such as a breaker store's sync thread, runs by the clock: under valgrind's
    slowdown it would weigh on the longer run)."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out:
        command = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/cg.out",
                   sys.executable, __file__, "--child", case, variant, str(iterations)]  # fmt: skip
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=1800, check=False)
        main_thread = Path(out, "cg.out-01")
        found = TOTALS.search(main_thread.read_text()) if main_thread.exists() else None
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{case} {variant} failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def per_iteration(case: str, variant: str, warm: int, n: int, env: dict[str, str]) -> float:
    """(instructions at warm + n) − (instructions at warm), over n: start-up and warm-up cancel."""
    with ThreadPoolExecutor(2) as pool:  # the two runs side by side: one per core
        low, high = pool.map(lambda k: instructions(case, variant, k, env), (warm, warm + n))
    return (high - low) / n


def main(argv: list[str] | None = None) -> int:
    args = harness.redis_arguments(__doc__.splitlines()[0], argv)
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind): no instruction counts; the timed benchmarks stand alone.")
        return 0
    import redis

    client = redis.Redis.from_url(args.redis)
    if not harness.reachable(client, args.redis):
        return 1
    prefix = f"bench-instructions-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {"BENCH_PREFIX": prefix, "BENCH_REDIS_URL": args.redis, "PYTHONPATH": str(ROOT)}
    calls = 2_000 if args.quick else 20_000
    try:
        ours = per_iteration("breaker", "resilience", 0, calls, env)
        theirs = per_iteration("breaker", "pybreaker", 0, calls, env)
        print(f"## A successful call through a closed breaker ({calls:,} calls; instructions per call)\n")
        rows = [
            ["pybreaker, in memory", f"{theirs:,.0f}", "1.00×"],
            ["resilience, shared Redis", f"{ours:,.0f}", f"{ours / theirs:.2f}×"],
        ]
        print(harness.table(["variant", "instructions per call", "× pybreaker"], rows, "lrr"))
        if args.quick:
            return 0
        print("\n## One request through Django's WSGI handler (500 requests after 100; instructions per request)\n")
        from benchmarks.server import create_database, drop_database

        database = f"bench_instructions_{os.getpid()}"
        create_database(database)
        try:
            env = {**env, "BENCH_SERVER_DB": database, "BENCH_SERVER_REDIS": args.redis, "BENCH_SERVER_PREFIX": prefix}
            counts = {config: per_iteration("request", config, 100, 500, env) for config in REQUEST_CONFIGS}
        finally:
            drop_database(database)
        none = counts["none"]
        rows = [[c, f"{v:,.0f}", f"{v - none:+,.0f}", f"{v / none:.2f}×"] for c, v in counts.items()]
        print(harness.table(["configuration", "instructions per request", "over none", "× none"], rows, "lrrr"))
        print(f"\nThe stack's own work beyond two bare round trips: {counts['resilience'] - counts['pings']:+,.0f}; "
              f"DRF's throttles over ours: {(counts['drf'] - none) / (counts['resilience'] - none):.2f}×.")  # fmt: skip
    finally:
        harness.cleanup(client, prefix)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        case, variant, iterations = sys.argv[2], sys.argv[3], int(sys.argv[4])
        if case == "breaker":
            _run_breaker(variant, iterations, os.environ["BENCH_REDIS_URL"])
        else:
            _run_request(variant, iterations)
        sys.exit(0)
    sys.exit(main())
