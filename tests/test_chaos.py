"""Chaos: a real gunicorn (4 workers) serving a small project that uses the app, under bounded load,
while its own Redis is killed and restarted empty, Postgres is cut and goes down through the fault
proxy, and an HTTP upstream fails. Phases: steady → redis_down → redis_back → postgres → upstream →
recovery, about 25 s in all.

It asserts: every request answered and never a 500; every write acknowledged applied exactly once
against its idempotency key, none twice; DRF throttles exact while Redis is up, failing open (as
configured) while it is down, and enforced again by every worker within 2 s of Redis returning; a
Redis outage invisible to users; Postgres back within one ``open_for``; the upstream breaker open
in every worker within 1 s of its transition; a bounded number of server log lines per phase. It
prints a per-phase table and its measurements (lines starting with ``CHAOS``), under ``pytest -q``
too."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from .chaos_load import Result, Run, log_kinds, phase_table, running
from .faults.proxy import FaultProxy
from .httpserver import LocalHTTPServer
from .live import LiveServer
from .live_writes import live_writes, proxied_database, write_ledger  # noqa: F401 - live_writes: a fixture

pytestmark = pytest.mark.django_db(transaction=True)
WORKERS = 4
LOAD_THREADS = 2  # and PROBE_THREADS for bursts and polls: at most 4 client threads at once
PROBE_THREADS = 2
LIMIT, BURST_REQUESTS = 10, 30  # the "chaos" scope: 10/hour (burst 10, no refill within the run), hit 30 times
PG_OPEN_FOR = 1.5
UPSTREAM_OPEN_FOR = 3.0
DB_OPS = {"read", "write", "atomic"}
OK_STATUSES = {200, 429, 502, 503, 504}  # 429: throttled; 502: the upstream failed; 503/504: the outage's answers
# Log lines a phase may cost: a few per worker (transitions, and the first rejection, retry or
# unavailable store of each kind and name: the rest are folded into one summary a minute) ...
LOG_LINES_PER_WORKER = 10
# The rate limiter's own breaker (``redis:ratelimit``) probes every second while Redis is down:
# its open -> half_open -> open cycle is folded like per-request kinds (the first cycle is a line,
# then a summary a minute), so it fits the same budget however long the outage lasts.
EVENT_LINE = re.compile(r"^(\d+) \w+ resilience\.\S+ (\w+) (\w+) name=(\S+)")  # pid, area, kind, name


def settings_for(redis_url: str, proxy: FaultProxy, upstream: LocalHTTPServer) -> dict:
    return {
        "ROOT_URLCONF": "tests.urls_live",
        "MIDDLEWARE": [
            "tests.worker_pid.WorkerPidMiddleware",
            "django.middleware.security.SecurityMiddleware",
            "resilience.middleware.ResilienceMiddleware",
        ],
        "DATABASES": {"default": proxied_database(proxy)},
        "CHAOS_UPSTREAM": upstream.url(""),
        "RESILIENCE": {
            "HISTORY": False,
            "REDIS": redis_url,  # the test-owned redis-server: killed and restarted below
            "KEY_PREFIX": "chaos",
            "TRUSTED_PROXIES": ["127.0.0.1/32"],  # the client names itself in X-Forwarded-For
            "RATE_LIMITS": {"ip": "6000/min", "fail": "open"},  # the middleware's limit too (never reached)
            "ROUTES": [{"path": "*", "timeout": 3}],
            "BREAKERS": {
                "default": {"minimum_calls": 5, "failure_rate": 50, "window": 10, "open_for": PG_OPEN_FOR},
                # a worker's last 10 calls: the successes of earlier phases do not delay the trip
                f"http:{upstream.url('')}": {
                    "window_type": "count",
                    "window": 10,
                    "minimum_calls": 5,
                    "open_for": UPSTREAM_OPEN_FOR,
                },
            },
        },
        "REST_FRAMEWORK": {
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
            "DEFAULT_THROTTLE_RATES": {"chaos": f"{LIMIT}/hour", "recovery": "1/hour"},
        },
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"line": {"format": "%(process)d %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
            "loggers": {
                "resilience": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},  # 500s, 4xx
            },
        },
    }


def admitted(burst: list[Result]) -> int:
    return sum(r.status == 200 for r in burst)


def limits_enforced_again(run: Run, pool: ThreadPoolExecutor, back_at: float, timeout: float = 6.0) -> tuple[float | None, dict]:
    """Seconds from Redis returning until every worker refuses a client whose limit (1/hour) is spent.

    Redis comes back empty, so the client's first request that a worker decides through Redis is
    admitted and every later one refused; a worker still failing open admits it. Per worker: the
    answer to its first refusal after its last admission. None if not every worker got there."""
    identity = f"recovery-{uuid.uuid4().hex[:8]}"
    seen: list[Result] = []
    while run.now() < back_at + timeout:
        seen += run.burst(pool, "/chaos/recovery/", identity, PROBE_THREADS)
        since = enforcing_since(seen)
        if len(since) == WORKERS and run.now() > max(since.values()) + 0.3:  # and no admission since
            per_worker = sorted(round(t - back_at, 3) for t in since.values())
            return round(max(since.values()) - back_at, 3), {"probes": len(seen), "per_worker_s": per_worker}
    return None, {"probes": len(seen), "statuses": Counter(r.status for r in seen), "workers": len({r.pid for r in seen})}


def enforcing_since(seen: list[Result]) -> dict[int, float]:
    since: dict[int, float] = {}
    for pid in {r.pid for r in seen if r.pid}:
        mine = [r for r in seen if r.pid == pid]
        last_admitted = max((r.sent for r in mine if r.status == 200), default=-1.0)
        refused = [r.sent + r.took for r in mine if r.status == 429 and r.sent > last_admitted]
        if refused:
            since[pid] = min(refused)
    return since


def breaker_polls(run: Run, pool: ThreadPoolExecutor, name: str, timeout: float = 6.0) -> list[dict]:
    """Each worker's own view of breaker ``name`` (``/chaos/breaker/``), polled until every worker has
    said it is open. Times are wall-clock, as the breaker's ``since`` (Redis's clock, same host)."""
    polls: list[dict] = []

    def poll(_: int) -> dict:
        sent = time.time()
        body = requests.get(run.url + "/chaos/breaker/", params={"name": name}, timeout=5).json()
        return {**body, "sent": sent, "answered": time.time()}

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        polls += pool.map(poll, range(PROBE_THREADS))
        if len({p["pid"] for p in polls if p["state"] == "open"}) == WORKERS:
            break
    return polls


def propagation(polls: list[dict]) -> dict:
    """From the transition (the shared state's ``since``) to each worker's first answer saying open:
    an upper bound (a poll reaches a worker only when it is free). ``not_open_after_s``: the latest
    poll sent after the transition that found a worker not open yet (a lower bound)."""
    opened = [p for p in polls if p["state"] == "open"]
    if not opened:
        return {"opened": False, "workers_polled": len({p["pid"] for p in polls}), "polls": len(polls)}
    opened_at = min(p["since"] for p in opened)
    first_open: dict[int, float] = {}
    for p in opened:
        first_open[p["pid"]] = min(first_open.get(p["pid"], p["answered"]), p["answered"])
    stale = [p["sent"] - opened_at for p in polls if p["state"] != "open" and p["sent"] > opened_at]
    return {
        "opened": True,
        "workers_open": len(first_open),
        "max_s": round(max(first_open.values()) - opened_at, 3),
        "per_worker_s": sorted(round(t - opened_at, 3) for t in first_open.values()),
        "not_open_after_s": round(max(stale, default=0.0), 3),
        "polls": len(polls),
    }


def recovered_after(results: list[Result], ops: set[str], since: float) -> float:
    """Seconds from ``since`` until the last failed answer of ``ops`` (0.0: none failed after it)."""
    failed = [r.sent + r.took for r in results if r.op in ops and r.status != 200 and r.sent >= since]
    return round(max(failed, default=since) - since, 3)


def healthy_for(run: Run, ops: set[str], seconds: float, timeout: float) -> None:
    """Wait (at most ``timeout``) until ``ops`` have been answered, and only with 200, for ``seconds``."""
    end = run.now() + timeout
    while run.now() < end:
        now = run.now()
        mine = [r for r in run.results if r.op in ops]
        recent = [r for r in mine if r.sent >= now - seconds]
        if recent and not [r for r in mine if r.status != 200 and r.sent >= now - seconds]:
            return
        time.sleep(0.1)


def log_budget(seconds: float, lines: list[str]) -> tuple[int, int]:
    """(lines, allowed): a few per worker, whatever the length of the phase."""
    return len(lines), LOG_LINES_PER_WORKER * WORKERS


def repeated_events(logs: dict[str, list[str]]) -> list[str]:
    """Events of one kind and name that one worker logged more than once: each is a line the first
    time, then one summary a minute (longer than this run). Transitions are a line each; kinds the
    event path summarises apart by a field (``events.SPLIT_BY``: a rejection's ``state``) count per
    value of that field."""
    from resilience.observability.events import SPLIT_BY

    def key(line: str) -> tuple[str, ...] | None:
        match = EVENT_LINE.match(line)
        if match is None or match[3] == "transition":
            return None
        split = SPLIT_BY.get(match[3])
        value = re.search(rf" {split}=(\S+)", line) if split else None
        return (*match.groups(), value[1] if value else "")

    seen = Counter(k for lines in logs.values() for k in map(key, lines) if k is not None)
    return [" ".join(k).strip() for k, count in seen.items() if count > 1]


@pytest.mark.usefixtures("live_writes")
def test_chaos_under_load_redis_postgres_and_an_upstream_fail_and_recover(redis_server, capsys):
    proxy = FaultProxy(connection.settings_dict["HOST"], int(connection.settings_dict["PORT"]))
    upstream = LocalHTTPServer()
    upstream_breaker = f"http:{upstream.url('')}"
    n: dict = {}  # the measurements, printed as JSON
    try:
        with (
            LiveServer(settings_for(redis_server.url, proxy, upstream), workers=WORKERS) as server,
            ThreadPoolExecutor(PROBE_THREADS) as pool,
        ):
            run = Run(server.url, lambda: server.output().splitlines())
            run.begin("steady")
            threads = running([run.load] * LOAD_THREADS)
            try:
                time.sleep(2.0)
                n["steady_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "steady", BURST_REQUESTS))
                time.sleep(1.0)

                down_at = run.begin("redis_down")
                redis_server.kill()
                time.sleep(1.0)
                n["redis_down_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "redis-down", BURST_REQUESTS))
                time.sleep(max(0.0, down_at + 4.0 - run.now()))

                back_at = run.begin("redis_back")
                redis_server.start()  # on the same port, empty (no persistence)
                n["redis_boot_s"] = round(run.now() - back_at, 3)
                n["limits_back_s"], n["limits_back"] = limits_enforced_again(run, pool, back_at)
                n["redis_back_admitted"] = admitted(run.burst(pool, "/chaos/limited/", "redis-back", BURST_REQUESTS))
                time.sleep(1.0)

                run.begin("postgres")
                time.sleep(0.5)
                proxy.cut()  # every connection cut, mid-statement for some
                time.sleep(1.0)
                proxy.cut()
                time.sleep(1.0)
                proxy.down()  # Postgres goes away: connections cut, new ones refused
                time.sleep(2.5)
                proxy.heal()
                healed_at = run.now()
                healthy_for(run, DB_OPS, 1.0, timeout=6.0)
                n["pg_recovery_s"] = recovered_after(run.results, DB_OPS, healed_at)

                run.begin("upstream")
                run.upstream_status = 503  # the load's upstream calls now fail (and only those run)
                n["breaker"] = propagation(breaker_polls(run, pool, upstream_breaker))
                time.sleep(0.5)

                heal_at = run.begin("recovery")
                run.upstream_status = 200
                healthy_for(run, {"upstream"}, 1.0, timeout=UPSTREAM_OPEN_FOR + 5.0)
                n["upstream_recovery_s"] = recovered_after(run.results, {"upstream"}, heal_at)
                time.sleep(0.5)
                run.begin("")
            finally:
                run.stop.set()
                for thread in threads:
                    thread.join(15)
            time.sleep(0.3)  # the last lines reach the log
            logs = run.logs()
    finally:
        proxy.close()
        upstream.close()

    results = run.results
    statuses = Counter(r.status for r in results)
    ledger = write_ledger((r.key, r.status) for r in results if r.key)
    seconds = {name: end - begin for name, begin, end in run.spans}
    budgets = {name: log_budget(seconds[name], lines) for name, lines in logs.items()}
    n.update(
        requests=len(results),
        statuses={str(k): v for k, v in statuses.items()},
        writes=ledger,
        log_lines_allowed=budgets,
        log_kinds={name: dict(log_kinds(lines)) for name, lines in logs.items()},
    )
    table = phase_table(run.spans, results, logs)
    with capsys.disabled():  # shown by CI's `pytest -q` too
        print("\nCHAOS per phase\n" + table + "\nCHAOS", json.dumps(n, default=str), flush=True)
    context = (table, n, {name: lines[-20:] for name, lines in logs.items()})

    # Every request got an answer, and never a 500.
    assert statuses[500] == 0, context
    assert set(statuses) <= OK_STATUSES, context
    # Writes: every acknowledged one applied exactly once, none twice, none that nobody sent.
    assert ledger["keys_written_twice"] == 0, context
    assert ledger["acknowledged_and_written_once"] == ledger["writes_acknowledged"] > 0, context
    assert ledger["written_but_never_sent"] == 0, context
    # Limits exact while Redis is up; failing open while it is down (RATE_LIMITS["fail"] = "open").
    assert n["steady_admitted"] == LIMIT and n["redis_back_admitted"] == LIMIT, context
    assert n["redis_down_admitted"] == BURST_REQUESTS, context
    # Redis down: breakers run on local state, limits fail open; users see nothing of it.
    assert all(r.status == 200 for r in results if r.phase == "redis_down"), context
    # Rate limits enforced again by every worker within 2 s of Redis returning.
    assert n["limits_back_s"] is not None and n["limits_back_s"] <= 2.0, context
    # Postgres: the outage was seen (503s), and service came back within one open_for (+ a request in flight).
    assert Counter(r.status for r in results if r.phase == "postgres")[503] > 0, context
    assert n["pg_recovery_s"] <= PG_OPEN_FOR + 1.0, context
    # The upstream breaker open in every worker within 1 s of its transition; closed again afterwards.
    breaker = n["breaker"]
    assert breaker["opened"] and breaker["workers_open"] == WORKERS, context
    assert breaker["max_s"] <= 1.0 and breaker["not_open_after_s"] <= 1.0, context
    assert n["upstream_recovery_s"] <= UPSTREAM_OPEN_FOR + 2.0, context
    # Log lines bounded per phase, never one per request; no traceback anywhere.
    assert all(lines <= allowed for lines, allowed in budgets.values()), context
    assert sum(len(lines) for lines in logs.values()) < len(results) / 20, context
    assert repeated_events(logs) == [], context
    assert not [line for lines in logs.values() for line in lines if "Traceback" in line], context
