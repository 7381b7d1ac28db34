"""Issue 13, budget: four processes share the ``aws`` retry budget through Redis, so a failing region
gets at most budget-bounded retries, counted at the failing endpoint: no retry storm.

The region is a ``ScriptedAWS`` answering every request ``503 ServiceUnavailable``; it counts the
requests it receives, so every number below is counted at the server, not by the clients. Four
spawned processes (fresh interpreters, ``tests.storage.workers.setup``) each make ``CALLS`` calls
through a protected boto3 client, as fast as they can, in three phases that differ in one setting:

    shared    REDIS set, the budget on: one budget for the four processes (the criterion)
    separate  REDIS unset, the budget on: each process has its own budget (what sharing saves)
    none      REDIS set, no budget: every call makes all its attempts (the storm)

The budget (``retry_budget.lua``) grants a retry only while ``retries + 1 <= ratio * calls + floor``
over the sliding window, where ``floor = floor_per_second * window`` is one allowance per window (not
a rate earned second by second) and ``calls`` are those the script has been told of: a process sends
its calls along with its next retry decision, so Redis never counts more calls than were made. A
phase shorter than the window evicts nothing, so over the whole phase

    requests <= first attempts + floor(ratio * first attempts + floor_per_second * window)

exactly, with no slack: the script decides atomically in Redis.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
import traceback
from typing import Any

import redis
from django.conf import settings as django_settings

from tests.integrations.aws.fake_aws import Answer

SPAWN = multiprocessing.get_context("spawn")
PROCESSES = 4
CALLS = 50  # per process and phase
FIRST_ATTEMPTS = PROCESSES * CALLS
ATTEMPTS = 3
BUDGET = {"ratio": 0.1, "floor_per_second": 0.5, "window": 60}  # 30 retries per window + 10 % of calls
PHASES = ("shared", "separate", "none")
FAILING = Answer(503, "ServiceUnavailable")


def budget_bound(calls: int) -> int:
    """The most retries the budget grants against ``calls`` calls within one window."""
    return math.floor(BUDGET["ratio"] * calls + BUDGET["floor_per_second"] * BUDGET["window"])


def phase_settings(phase: str, redis_url: str, prefix: str) -> dict[str, Any]:
    # REDIS_TIMEOUT: a busy 2-core machine must not push a budget decision past the 0.1 s default,
    # after which the process's local budget would decide (the test asserts that never happened)
    shared = {"REDIS": redis_url, "KEY_PREFIX": prefix, "REDIS_TIMEOUT": 2.0}
    return {
        "HISTORY": False,
        **(shared if phase != "separate" else {}),
        "RETRY": {
            "aws": {
                "backoff": "exponential", "base": 0.001, "cap": 0.01, "attempts": ATTEMPTS,
                "budget": None if phase == "none" else BUDGET,
            }
        },
        "AWS": {"throttling_base": 0.05},
        "BREAKERS": {"default": {"minimum_calls": 1_000_000}},  # the breaker never opens: only the budget stops retries
    }  # fmt: skip


def calling_process(url: str, redis_url: str, prefix: str, barrier: Any, results: Any) -> None:
    """One process: for each phase, its settings, then ``CALLS`` calls between two barrier waits."""
    from tests.storage.workers import setup

    try:
        setup(phase_settings(PHASES[0], redis_url, prefix))
        from botocore.exceptions import ClientError
        from django.test.utils import override_settings

        from resilience.signals import event_emitted
        from tests.integrations.aws.conftest import client

        seen: dict[str, int] = {}

        def receive(sender: Any, event: Any, **kwargs: Any) -> None:
            key = f"{event.area}:{event.kind}"
            seen[key] = seen.get(key, 0) + 1

        event_emitted.connect(receive, weak=False)
        s3 = client(url)
        for phase in PHASES:
            override_settings(RESILIENCE=phase_settings(phase, redis_url, prefix)).enable()
            seen.clear()
            report = {"phase": phase, "failed": 0, "retries": 0}
            barrier.wait(60)
            for _ in range(CALLS):
                try:
                    s3.list_buckets()
                except ClientError as exc:
                    report["failed"] += exc.response["Error"]["Code"] == "ServiceUnavailable"
                    report["retries"] += exc.response["ResponseMetadata"]["RetryAttempts"]
            results.put({**report, **seen})
            barrier.wait(60)
    except Exception:  # noqa: BLE001 - reported to the test, which fails with it
        results.put({"error": traceback.format_exc()})
        barrier.abort()


def budget_counts(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """(calls, retries) the shared budget counted: the ``c:<second>`` and ``r:<second>`` fields of its hash."""
    (key,) = client.keys(f"{prefix}:retry-budget:*")
    fields = {k.decode(): int(v) for k, v in client.hgetall(key).items()}
    return (sum(v for k, v in fields.items() if k.startswith("c:")), sum(v for k, v in fields.items() if k.startswith("r:")))


def run_phases(aws: Any, prefix: str) -> dict[str, dict[str, Any]]:
    """Each phase's requests at the endpoint, seconds, the shared budget's counts and the processes' reports."""
    redis_url = django_settings.TEST_REDIS_URL
    barrier, results = SPAWN.Barrier(PROCESSES + 1), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=calling_process, args=(aws.url, redis_url, prefix, barrier, results), daemon=True)
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    runs: dict[str, dict[str, Any]] = {}
    try:
        for phase in PHASES:
            aws.play(FAILING)  # the count starts at 0
            try:
                barrier.wait(60)  # all four have their settings and their client: go
                started = time.monotonic()
                barrier.wait(60)  # all four made their calls
            except threading.BrokenBarrierError:
                raise AssertionError(f"a process failed: {results.get(timeout=5)}") from None
            runs[phase] = {"requests": aws.requests, "seconds": time.monotonic() - started}
            runs[phase]["reports"] = [results.get(timeout=10) for _ in procs]
            if phase == "shared":
                runs[phase]["budget"] = budget_counts(redis.Redis.from_url(redis_url), prefix)
    finally:
        for p in procs:
            p.join(5)
            p.kill()
    return runs


def test_four_processes_sharing_the_budget_retry_at_most_the_budget_against_a_failing_region(aws, key_prefix):
    runs = run_phases(aws, key_prefix)
    print({phase: (run["requests"], round(run["seconds"], 2)) for phase, run in runs.items()})
    shared, separate, storm = runs["shared"], runs["separate"], runs["none"]
    for run in runs.values():  # the same load in every phase: every call of every process failed
        assert [r["failed"] for r in run["reports"]] == [CALLS] * PROCESSES, run["reports"]
        assert run["seconds"] < BUDGET["window"] - 1  # one window: the bound below evicts nothing

    assert not any(r.get("storage:store_unavailable") for r in shared["reports"])  # Redis decided every retry
    # the criterion: the four processes together stay within one budget, counted at the endpoint
    assert FIRST_ATTEMPTS < shared["requests"] <= FIRST_ATTEMPTS + budget_bound(FIRST_ATTEMPTS), runs
    # it is one budget: it counted the calls of all four processes, and granted exactly the retries
    # the endpoint received and the clients report
    retries = shared["requests"] - FIRST_ATTEMPTS
    assert shared["budget"] == (FIRST_ATTEMPTS, retries)
    assert sum(r["retries"] for r in shared["reports"]) == sum(r.get("retry:retry", 0) for r in shared["reports"]) == retries
    assert all(r.get("retry:budget_refused", 0) > 0 for r in shared["reports"])  # refused in every process

    # four separate budgets admit four floors: more than the shared bound
    per_process = CALLS + min((ATTEMPTS - 1) * CALLS, budget_bound(CALLS))
    assert separate["requests"] == PROCESSES * per_process > FIRST_ATTEMPTS + budget_bound(FIRST_ATTEMPTS)
    # without a budget the same load is the storm: every call makes all its attempts
    assert storm["requests"] == ATTEMPTS * FIRST_ATTEMPTS
    assert shared["requests"] * 2 < storm["requests"]
