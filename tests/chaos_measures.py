"""What the chaos tests (``tests/test_chaos.py``) measure on a live gunicorn, whatever the Redis behind it
(one server, or a cluster): bursts against a DRF throttle, how soon every worker enforces limits
again, how soon a breaker's trip reaches every worker, when failures stop, the server's log lines
per phase; and the report every variant prints (lines starting with ``CHAOS``) and the assertions
every variant makes on it: every request answered, never a 500, each acknowledged write applied
once, log lines bounded per phase.

Each worker's answer names it (``X-Worker-Pid``), so a measure is "every worker", never "some request"."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from .chaos_load import Result, Run, log_kinds, phase_table
from .live_writes import write_ledger

WORKERS = 4
LOAD_THREADS = 2  # and PROBE_THREADS for bursts and polls: at most 4 client threads at once
PROBE_THREADS = 2
OK_STATUSES = {200, 429, 502, 503, 504}  # 429: throttled; 502: the upstream failed; 503/504: the outage's answers
# Log lines a phase may cost: a few per worker (transitions, and the first rejection, retry or
# unavailable store of each kind and name: the rest are folded into one summary a minute) ...
LOG_LINES_PER_WORKER = 10
# The rate limiter's own breaker (``redis:ratelimit``) probes every second while Redis is down:
# its open -> half_open -> open cycle is folded like per-request kinds (the first cycle is a line,
# then a summary a minute), so it fits the same budget however long the outage lasts.
EVENT_LINE = re.compile(r"^(\d+) \w+ resilience\.\S+ (\w+) (\w+) name=(\S+)")  # pid, area, kind, name


def admitted(burst: list[Result]) -> int:
    return sum(r.status == 200 for r in burst)


def limits_enforced_again(run: Run, pool: ThreadPoolExecutor, back_at: float, timeout: float = 6.0) -> tuple[float | None, dict]:
    """Seconds from Redis answering again (``back_at``) until every worker refuses a client whose
    limit (1/hour) is spent.

    The client is new, so its first request that a worker decides through Redis is admitted and
    every later one refused; a worker still failing open admits it. Per worker: the answer to its
    first refusal after its last admission. None if not every worker got there."""
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


def report(run: Run, n: dict[str, Any], capsys: pytest.CaptureFixture[str], title: str = "CHAOS") -> tuple:
    """Print the per-phase table and the measurements ``n`` (with the run's totals added) under
    ``title``, shown by CI's ``pytest -q`` too; then assert what holds in every variant: every request
    answered and never a 500, every acknowledged write applied exactly once, log lines bounded per
    phase (a few per worker, never one per request), no event repeated, no traceback. Returns the
    context the variant's own assertions show when they fail."""
    logs = run.logs()
    results = run.results
    statuses = Counter(r.status for r in results)
    ledger = write_ledger((r.key, r.status) for r in results if r.key)
    budgets = {name: (len(lines), LOG_LINES_PER_WORKER * WORKERS) for name, lines in logs.items()}
    n.update(
        requests=len(results),
        statuses={str(k): v for k, v in statuses.items()},
        writes=ledger,
        log_lines_allowed=budgets,
        log_kinds={name: dict(log_kinds(lines)) for name, lines in logs.items()},
    )
    table = phase_table(run.spans, results, logs)
    with capsys.disabled():
        print(f"\n{title} per phase\n{table}\n{title}", json.dumps(n, default=str), flush=True)
    context = (table, n, {name: lines[-20:] for name, lines in logs.items()})

    # Every request got an answer, and never a 500.
    assert statuses[500] == 0, context
    assert set(statuses) <= OK_STATUSES, context
    # Writes: every acknowledged one applied exactly once, none twice, none that nobody sent.
    assert ledger["keys_written_twice"] == 0, context
    assert ledger["acknowledged_and_written_once"] == ledger["writes_acknowledged"] > 0, context
    assert ledger["written_but_never_sent"] == 0, context
    # Log lines bounded per phase, never one per request; no traceback anywhere.
    assert all(lines <= allowed for lines, allowed in budgets.values()), context
    assert sum(len(lines) for lines in logs.values()) < len(results) / 20, context
    assert repeated_events(logs) == [], context
    assert not [line for lines in logs.values() for line in lines if "Traceback" in line], context
    return context
