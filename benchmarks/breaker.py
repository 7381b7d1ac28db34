"""Per-call overhead of a successful call through a closed circuit breaker.

Run from the project root::

    .venv/bin/python benchmarks/breaker.py           # full run, ~10 s
    .venv/bin/python benchmarks/breaker.py --quick   # smoke test, ~2 s

Compares the bare call, pybreaker (in memory and with its Redis storage) and ``resilience``
(in-process state and shared Redis state). The machine this runs on may be shared and noisy, so
every variant is timed in the same process, in interleaved rounds, and the tables report medians
and ratios measured in the same run rather than absolute numbers to compare across runs.

Redis: ``--redis-url`` (default ``redis://127.0.0.1:6379/14``). Every key the script creates
starts with a unique prefix and is deleted at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``resilience`` and ``benchmarks`` importable

import pybreaker  # noqa: E402
import redis  # noqa: E402

from benchmarks import harness  # noqa: E402
from resilience.core.breaker import CircuitBreaker  # noqa: E402
from resilience.core.breaker_config import BreakerConfig  # noqa: E402
from resilience.storage.memory.breaker import MemoryBreakerStore  # noqa: E402
from resilience.storage.redis.breaker import RedisBreakerStore  # noqa: E402

BARE = "bare call"
PYB_MEM = "pybreaker, in memory"
PYB_REDIS = "pybreaker, Redis storage"
OURS_MEM = "resilience, in-process"
OURS_REDIS = "resilience, shared Redis"
OURS_REDIS_DECO = "resilience, shared Redis, @decorator"
OURS_DJANGO = "resilience, @circuit_breaker (Django, Redis)"
OURS_MEM_PROM = "resilience, in-process, Prometheus sink"
OURS_REDIS_PROM = "resilience, shared Redis, Prometheus sink"


def fn() -> int:
    return 1


def prometheus_emit() -> Any:
    """An event path into a ``PrometheusSink`` (what ``events.emit`` does for each sink), or None
    without prometheus_client. A successful closed call emits nothing: these rows show it costs nothing."""
    try:
        from resilience.observability.prometheus import PrometheusSink
        from resilience.observability.prometheus_settings import PrometheusConfig
    except ImportError:
        return None
    sink = PrometheusSink(PrometheusConfig())

    def emit(event: Any) -> None:
        sink.increment(f"resilience.{event.area}.{event.kind}", 1.0, {"name": event.name})

    return emit


@dataclass
class Variant(harness.Variant):
    uses_redis: bool = False  # listed in the Redis traffic table


SLOW = 20  # first calibration batch for a variant doing network I/O on every call


# -- Redis round trips -------------------------------------------------------------------------
def _command_counts(info_client: redis.Redis) -> dict[str, int]:
    stats = info_client.info("commandstats")
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}


def round_trips(variant: Variant, info_client: redis.Redis, calls: int) -> dict[str, Any]:
    """Server-side commands (INFO commandstats deltas, minus INFO itself) and client-side sends."""
    variant.loop(10)  # connection checked out and warm
    before = _command_counts(info_client)
    with harness.SendCounter() as sent:
        start = time.perf_counter()
        variant.loop(calls)
        elapsed = time.perf_counter() - start
    after = _command_counts(info_client)
    delta = {cmd: after.get(cmd, 0) - before.get(cmd, 0) for cmd in after}
    delta = {cmd: n for cmd, n in delta.items() if n > 0 and cmd != "info"}  # INFO: ours, and any other client's
    server = sum(delta.values())
    return {"server": server, "by_command": delta, "sent": sent.caller, "background": sent.background, "seconds": elapsed}


def idle_noise(info_client: redis.Redis, seconds: float) -> int:
    """Commands the server ran for everyone else (and our sync threads) while this process did nothing."""
    before = _command_counts(info_client)
    time.sleep(seconds)
    after = _command_counts(info_client)
    return sum(max(after.get(c, 0) - before.get(c, 0), 0) for c in after if c != "info")


# -- setup -------------------------------------------------------------------------------------
def _setup_django(redis_url: str, prefix: str) -> Any:
    """The public decorator over the Django-configured registry, sharing state through Redis."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "resilience"],
            DATABASES={},
            RESILIENCE={"REDIS": redis_url, "KEY_PREFIX": prefix, "HISTORY": False},
            LOGGING_CONFIG=None,
        )
        django.setup()
    from resilience.breakers.decorator import circuit_breaker
    from resilience.breakers.registry import breakers

    return circuit_breaker("bench")(fn), breakers


def _fmt_ratio(value: float) -> str:
    return f"{value:,.0f}×" if value >= 100 else f"{value:.2f}×"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run for smoke tests (< 10 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per variant (default 7, quick 3)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--no-django", action="store_true", help="skip the Django-level @circuit_breaker variant")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    target_s = 0.02 if args.quick else 0.15
    rt_calls = 200 if args.quick else 1000

    prefix = f"bench-breaker-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    pyb_client = redis.Redis.from_url(args.redis_url)  # bytes replies: pybreaker decodes them itself
    ours_client = redis.Redis.from_url(args.redis_url, socket_timeout=0.1, socket_connect_timeout=0.1)
    info_client = redis.Redis.from_url(args.redis_url, socket_timeout=2)
    if not harness.reachable(info_client, args.redis_url):
        return 2

    store: RedisBreakerStore | None = None
    registry: Any = None
    try:
        pyb_mem = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        pyb_storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, pyb_client, namespace=f"{prefix}-pybreaker")
        pyb_redis = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, state_storage=pyb_storage)
        mem = CircuitBreaker("bench", BreakerConfig(), MemoryBreakerStore())
        store = RedisBreakerStore(ours_client, prefix=prefix, sync_interval=0.5)
        shared = CircuitBreaker("bench", BreakerConfig(), store)

        variants = [
            Variant(BARE, harness.loop(fn)),
            Variant(PYB_MEM, harness.loop(pyb_mem.call, fn)),
            Variant(PYB_REDIS, harness.loop(pyb_redis.call, fn), first_batch=SLOW, uses_redis=True),
            Variant(OURS_MEM, harness.loop(mem.call, fn)),
            Variant(OURS_REDIS, harness.loop(shared.call, fn), uses_redis=True),
            Variant(OURS_REDIS_DECO, harness.loop(shared(fn)), uses_redis=True),
        ]
        to_prometheus = prometheus_emit()
        if to_prometheus is None:
            print("(skipping the Prometheus sink variants: prometheus_client is not installed)\n")
        else:
            mem_prom = CircuitBreaker("bench", BreakerConfig(), MemoryBreakerStore(), emit=to_prometheus)
            shared_prom = CircuitBreaker("bench", BreakerConfig(), store, emit=to_prometheus)
            variants += [
                Variant(OURS_MEM_PROM, harness.loop(mem_prom.call, fn)),
                Variant(OURS_REDIS_PROM, harness.loop(shared_prom.call, fn), uses_redis=True),
            ]
        if not args.no_django:
            try:
                decorated, registry = _setup_django(args.redis_url, f"{prefix}-django")
            except Exception as exc:  # noqa: BLE001 - optional variant: report and go on
                print(f"(skipping the Django @circuit_breaker variant: {type(exc).__name__}: {exc})\n")
            else:
                variants.append(Variant(OURS_DJANGO, harness.loop(decorated), uses_redis=True))

        started = time.perf_counter()
        harness.measure(variants, rounds, target_s)
        by_name = {v.name: v for v in variants}
        base, pym, pyr, ours = (by_name[n].median for n in (BARE, PYB_MEM, PYB_REDIS, OURS_REDIS))

        print(f"## Successful call through a closed breaker ({rounds} interleaved rounds, median ns per call)\n")
        rows = []
        for v in variants:
            m = v.median
            overhead = f"{m - base:+,.0f}"
            spread = harness.spread(v.samples)
            rows.append([v.name, harness.fmt_ns(m), spread, overhead, _fmt_ratio(m / pym), _fmt_ratio(pyr / m), f"{v.calls:,}"])
        headers = ["variant", "ns/call (median)", "min–max", "overhead over bare (ns)", "× pybreaker in-memory",
                   "pybreaker-Redis ÷ this", "calls/round"]  # fmt: skip
        print(harness.table(headers, rows, "lrrrrrr"))
        took = time.perf_counter() - started
        print(f"\nTimed in {took:.1f} s; ns/call includes the same loop cost for every row (nothing subtracted).")

        # sanity: every breaker is still closed, and ours really used Redis (not its local fallback)
        problems = []
        if pyb_mem.current_state != pybreaker.STATE_CLOSED or pyb_redis.current_state != pybreaker.STATE_CLOSED:
            problems.append("a pybreaker breaker left the closed state")
        if mem.state != "closed" or shared.state != "closed":
            problems.append("a resilience breaker left the closed state")
        if not store.healthy:
            problems.append("the resilience Redis store fell back to local state during the run")

        print("\n## Redis traffic per successful call (approximate)\n")
        trips_rows = []
        for v in variants:
            if not v.uses_redis:
                continue
            noise = idle_noise(info_client, 0.05)
            result = round_trips(v, info_client, rt_calls)
            commands = ", ".join(f"{cmd} {n}" for cmd, n in sorted(result["by_command"].items(), key=lambda kv: -kv[1])[:4])
            trips_rows.append([
                v.name, f"{result['sent'] / rt_calls:.3f}", f"{result['server'] / rt_calls:.3f}", commands or "–",
                f"{result['seconds'] * 1e3:.1f}", str(result["background"]), f"{noise / 0.05 * result['seconds']:.1f}",
            ])  # fmt: skip
        headers = [f"variant ({rt_calls:,} calls)", "round trips/call (calling thread)", "server commands/call",
                   "server commands in window", "window (ms)", "background sync sends in window",
                   "others' commands expected in window"]  # fmt: skip
        print(harness.table(headers, trips_rows, "lrrlrrr"))
        print(
            "\nRound trips: packets the calling thread sent to Redis during the calls (one per command or"
            "\npipeline), counted by wrapping redis-py's send. Background sync: packets resilience's sync"
            "\nthreads sent meanwhile (one pipelined read per store every sync_interval, whatever the call rate)."
            "\nServer commands: deltas of INFO commandstats, less INFO itself. The server is shared: other clients"
            "\nand the sync threads add to it; the last column is the rate of others measured while idle just"
            "\nbefore, scaled to the window. Approximate by nature."
        )

        print("\n## Targets\n")
        checks = [
            (f"resilience with Redis ≤ 1.0 × pybreaker in-memory ({ours / pym:.2f}×)", ours <= 1.0 * pym),
            (f"pybreaker with Redis ≥ 40 × resilience with Redis ({pyr / ours:,.0f}×)", pyr >= 40 * ours),
        ]
        if OURS_REDIS_PROM in by_name:
            prom = by_name[OURS_REDIS_PROM].median
            checks.append((
                f"resilience with Redis and the Prometheus sink ≤ 1.2 × pybreaker in-memory ({prom / pym:.2f}×;"
                f" without the sink {ours / pym:.2f}×)", prom <= 1.2 * pym,
            ))  # fmt: skip
        for text, ok in checks:
            print(f"- {'PASS' if ok else 'FAIL'}: {text}")
        for problem in problems:
            print(f"- WARNING: {problem}")
        return 0
    finally:
        if registry is not None:
            registry.reload()  # closes the Django registry's store and its sync thread
        if store is not None:
            store.close()
        deleted = 0
        try:
            for key in info_client.scan_iter(match=f"{prefix}*", count=500):
                deleted += info_client.delete(key)
        except (redis.RedisError, OSError) as exc:
            print(f"\ncould not delete keys {prefix}*: {type(exc).__name__}", file=sys.stderr)
        print(f"\n(cleaned up {deleted} Redis key(s) under {prefix}*)")
        for client in (pyb_client, ours_client, info_client):
            client.close()


if __name__ == "__main__":
    sys.exit(main())
