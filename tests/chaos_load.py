"""Bounded client load for ``tests/test_chaos.py``: a few threads against a live gunicorn, every
request recorded with the phase it was sent in, its status, latency and the worker that answered
(``X-Worker-Pid``, set by ``tests.worker_pid``); and the per-phase table the test prints.

Localhost only; the number of threads is fixed by the caller and every loop ends with ``stop``."""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

# The cycle a load thread runs outside the upstream phase: Postgres reads and writes (autocommit
# and in a transaction, each with its own idempotency key) and an outbound HTTP call.
MIX = ("read", "write", "upstream", "atomic", "write", "upstream")
LOG_LINE = re.compile(r"^\d+ (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) (\S+ \S+)")  # pid level logger area kind


@dataclass(frozen=True)
class Result:
    phase: str
    op: str
    sent: float  # seconds since the run started
    took: float
    status: int | str  # "no answer: <exception>" when the server never answered
    pid: int | None
    key: str = ""  # a write's idempotency key


class Run:
    """The shared state of one chaos run: the server's address, the current phase, every result,
    and where each phase begins and ends, in seconds and in lines of the server's log."""

    def __init__(self, url: str, log_lines: Callable[[], list[str]]) -> None:
        self.url, self.log_lines = url, log_lines
        self.phase = ""
        self.upstream_status = 200  # what the load asks the upstream for: 503 while it is failing
        self.started = time.monotonic()
        self.begun = 0.0  # when the first phase began
        self.results: list[Result] = []
        self.spans: list[tuple[str, float, float]] = []  # (phase, begin, end) in seconds since the start
        self.marks: list[tuple[str, int]] = []  # (phase, its first line in the log)
        self.addresses: dict[str, str] = {}  # a burst's client: identity -> its address
        self.stop = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.started

    def begin(self, phase: str) -> float:
        """End the current phase and start ``phase`` (``""``: the run is over); returns the time."""
        now = self.now()
        if self.phase:
            self.spans.append((self.phase, self.spans[-1][2] if self.spans else self.begun, now))
        elif not self.marks:
            self.begun = now
        self.marks.append((phase, len(self.log_lines())))
        self.phase = phase
        return now

    def logs(self) -> dict[str, list[str]]:
        """Each phase's lines of the server's log."""
        output = self.log_lines()
        bounds = itertools.pairwise([*self.marks, ("", len(output))])
        return {name: output[start:end] for (name, start), (_, end) in bounds if name}

    def get(self, session: requests.Session, op: str, path: str, **kwargs: Any) -> Result:
        return self._send(session, "GET", op, path, "", **kwargs)

    def write(self, session: requests.Session, op: str) -> Result:
        key = uuid.uuid4().hex
        path = "/pg-write/?atomic=1" if op == "atomic" else "/pg-write/"
        return self._send(session, "POST", op, path, key, headers={"Idempotency-Key": key})

    def _send(self, session: requests.Session, method: str, op: str, path: str, key: str, **kwargs: Any) -> Result:
        phase, sent = self.phase, self.now()
        pid = None
        try:
            response = session.request(method, self.url + path, timeout=10, **kwargs)
            status: int | str = response.status_code
            pid = int(response.headers.get("X-Worker-Pid") or 0) or None
        except requests.RequestException as exc:  # no answer at all (a worker killed, a reset)
            status = f"no answer: {type(exc).__name__}"
        result = Result(phase, op, sent, self.now() - sent, status, pid, key)
        self.results.append(result)  # list.append is atomic: threads share the list
        return result

    def load(self) -> None:
        """One load thread: the mix, or only upstream calls while the upstream phase runs."""
        session = requests.Session()
        for n in itertools.count():
            if self.stop.is_set():
                return
            op = "upstream" if self.phase == "upstream" else MIX[n % len(MIX)]
            if op == "read":
                self.get(session, op, "/pg-read/")
            elif op == "upstream":
                self.get(session, op, f"/chaos/upstream/?status={self.upstream_status}")
            else:
                self.write(session, op)

    @contextmanager
    def loading(self, threads: int) -> Iterator[None]:
        """``threads`` load threads for the block; stopped (and joined) when it ends, however it ends."""
        started = [threading.Thread(target=self.load, daemon=True) for _ in range(threads)]
        for thread in started:
            thread.start()
        try:
            yield
        finally:
            self.stop.set()
            for thread in started:
                thread.join(15)

    def burst(self, pool: ThreadPoolExecutor, path: str, identity: str, count: int, op: str = "limit") -> list[Result]:
        """``count`` requests from one client, racing on the pool's threads: ``identity``'s own address
        (in TEST-NET-2, the same all run long) in ``X-Forwarded-For``. Never the name itself: a hop that
        is not an address ends the walk at the proxy, and every such client would be 127.0.0.1."""
        address = self.addresses.setdefault(identity, f"198.51.100.{len(self.addresses) + 1}")
        headers = {"X-Forwarded-For": address}
        return list(pool.map(lambda _: self.get(requests.Session(), op, path, headers=headers), range(count)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def log_kinds(lines: list[str]) -> Counter[str]:
    """``resilience.breaker breaker transition`` → count, for the library's own lines; the rest by source."""
    kinds: Counter[str] = Counter()
    for line in lines:
        match = LOG_LINE.match(line)
        if match:
            kinds[f"{match.group(1)} {match.group(2)}"] += 1
        elif "] [INFO] " in line or "] [WARNING] " in line or "] [ERROR] " in line:
            kinds["gunicorn"] += 1
        else:
            kinds["other"] += 1
    return kinds


STATUS_COLUMNS = (200, 429, 502, 503, 504, 500)


def phase_table(phases: list[tuple[str, float, float]], results: list[Result], logs: dict[str, list[str]]) -> str:
    """One row per phase: duration, requests, statuses, latency, and the server's log lines."""
    header = ["phase", "s", "requests", *map(str, STATUS_COLUMNS), "other", "p50 ms", "p99 ms", "log lines"]
    rows = [header]
    for name, begin, end in phases:
        mine = [r for r in results if r.phase == name]
        statuses = Counter(r.status for r in mine)
        other = sum(n for status, n in statuses.items() if status not in STATUS_COLUMNS)
        took = [r.took * 1000 for r in mine]
        rows.append([
            name, f"{end - begin:.1f}", str(len(mine)), *(str(statuses[s]) for s in STATUS_COLUMNS), str(other),
            f"{percentile(took, 0.5):.0f}", f"{percentile(took, 0.99):.0f}", str(len(logs.get(name, []))),
        ])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    lines = [line(row) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
