"""The whole request in a real server: requests/s, p50 and p99 of one trivial DRF view in gunicorn,
in three configurations of the same view, URL and query (``SELECT 1`` on Postgres, persistent
connections, ``CONN_MAX_AGE`` 60 in all three), driven by ``wrk`` over 127.0.0.1:

- ``none``: Django + DRF alone, Django's own ``django.db.backends.postgresql``;
- ``resilience``: the full stack: ``ResilienceMiddleware`` with a route (``/bench/``) giving a 2 s
  deadline and a per-client (IP) rate, DRF's ``IPRateThrottle`` and ``TenantRateThrottle`` on Redis
  (``TENANT_RESOLVER`` reads ``X-Tenant``), and the ``resilience.backends.postgresql`` ENGINE, whose
  closed breaker ``postgres:default`` guards the statement (which runs with ``statement_timeout``
  set from the deadline: one more round trip);
- ``drf``: DRF's own ``AnonRateThrottle`` and a tenant ``SimpleRateThrottle`` on django-redis;
- ``pings``: ``none`` plus a middleware making two bare Redis round trips per request (a ``PING``
  written and its ``+PONG`` read on a raw socket): the floor of any stack making the two Redis round
  trips per request that issue 12 allows (one decision before authentication, one after), with none
  of a decision's own work and none of a client library's. It shows what share of ``none``, and what
  multiple of ``drf``, two round trips alone leave on this machine, measured in the same run.

Settings are ``benchmarks/server_app`` (chosen by environment variables). Rates are huge: nothing
is ever refused, and a run with any non-2xx answer (or socket error) is invalid (exit 1). wrk cycles
``X-Forwarded-For`` over 10,000 addresses and ``X-Tenant`` over 10,000 tenants (the server trusts
127.0.0.1 as its proxy: ``TRUSTED_PROXIES``, DRF's ``NUM_PROXIES = 1``), so DRF's per-client
history lists stay short and every configuration sees the same clients.

**CPU split** (2 cores): gunicorn (master and workers) is pinned to CPU 1 with ``taskset``, wrk
(one thread) to CPU 0; Redis and Postgres are the machine's shared services and stay unpinned
(the scheduler puts them mostly on CPU 0, beside wrk, which needs a tenth of a core). Gunicorn runs
3 sync workers and wrk keeps 6 connections open. A sync worker waits through each Redis and
Postgres round trip and closes the connection after each answer; with one worker CPU 1 idles
through those waits, and 3 workers, each with a request queued behind it (so none waits for wrk
to reconnect), keep it busy (the "CPU 1 busy" column: gunicorn's CPU time over the wall time, 85 to
100 %; the rest of CPU 1 goes to whatever else the scheduler puts there) without more processes
taking turns on one core. 2 and 4 workers gave the same req/s within the machine's noise.

For each measured run the table shows the CPU that each side spent per 1,000 requests
(``/proc/<pid>/stat``: user + system time, reaped children included): gunicorn's master and
workers, wrk, the Redis server answering at ``--redis`` (its ``INFO`` names the pid; other clients
of the shared server count too), and the Postgres backends of the run's database (their process
titles name it), next to wrk's own req/s, p50 and p99 (``wrk --latency``).

Each server is started for its measurement, warmed up by a short wrk run (not counted), measured,
and stopped; rounds rotate the order of the configurations and the table shows medians over rounds.
The script creates its own database (dropped at the end) and deletes its Redis keys.

    python benchmarks/server.py [--quick] [--redis redis://127.0.0.1:6379/14] [--check]

``--quick``: 1 round of 2 s per configuration (CI). ``--check``: instead of timing, show that the
resilience configuration applies (a tiny route rate gives 429; the view sees the deadline, and so
does Postgres's ``statement_timeout``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import methodcaller
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks import harness  # noqa: E402

CONFIGS = ("none", "pings", "resilience", "drf")
SERVER_CPU, CLIENT_CPU = "1", "0"
WORKERS = 3  # sync workers on CPU 1
CONNECTIONS = 6  # wrk's open connections: one request running and one queued per worker
CLIENTS = 10_000  # distinct X-Forwarded-For addresses and X-Tenant values
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TARGET_NONE = 0.85  # resilience ≥ 85 % of none
TARGET_DRF = 1.5  # resilience ≥ 1.5 × drf
TICK = os.sysconf("SC_CLK_TCK")

WRK_SCRIPT = """
local prepared, n, i = {}, %(clients)d, 0
for k = 0, n - 1 do
  prepared[k + 1] = wrk.format("GET", "/bench/", {
    ["X-Forwarded-For"] = string.format("10.%%d.%%d.9", math.floor(k / 256) %% 256, k %% 256),
    ["X-Tenant"] = "tenant-" .. k,
  })
end
request = function()
  i = i %% n + 1
  return prepared[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class InvalidRun(Exception):
    """The run cannot be compared: a server that did not start, a refused request, no wrk."""


@dataclass
class Result:
    """One measured wrk run: wrk's own numbers and the CPU seconds each group of processes spent."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]  # gunicorn, wrk, redis, postgres: CPU seconds during the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def per_1000(self, group: str) -> float:
        """CPU milliseconds of ``group`` per 1,000 requests."""
        return self.cpu[group] * 1e6 / self.requests


@dataclass
class Config:
    name: str
    results: list[Result] = field(default_factory=list)

    def median(self, value: Callable[[Result], float]) -> float:
        """The median over rounds of ``value`` of each result."""
        return statistics.median(value(r) for r in self.results)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, CPU ticks: utime + stime + cutime + cstime) of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[1]), sum(int(v) for v in fields[11:15])


@dataclass
class Watched:
    """The processes whose CPU is counted: gunicorn's master (and its workers), the Redis server that
    answers at ``--redis`` (``INFO server``), and the Postgres backends serving the run's database
    (their process titles name it; the cluster's other processes serve other clients of the shared
    machine)."""

    redis_pid: int | None
    database: str

    def snapshot(self, server_pid: int) -> dict[str, float]:
        """CPU seconds so far of each group."""
        total = {"gunicorn": 0.0, "redis": 0.0, "postgres": 0.0}
        if self.redis_pid is not None and (found := _stat(self.redis_pid)):
            total["redis"] = found[1] / TICK
        title = f" {self.database} ".encode()
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            found = _stat(pid)
            if found is None:
                continue
            if pid == server_pid or found[0] == server_pid:
                total["gunicorn"] += found[1] / TICK
            elif title in _cmdline(pid):
                total["postgres"] += found[1] / TICK
        return total


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


class Server:
    """gunicorn serving one configuration on a free port of 127.0.0.1, pinned to ``SERVER_CPU``."""

    def __init__(self, config: str, env: dict[str, str]) -> None:
        self.config, self.port = config, free_port()
        self.url = f"http://127.0.0.1:{self.port}/bench/"
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-server-{config}-", suffix=".log", delete=False)  # noqa: SIM115
        command = [
            "taskset", "-c", SERVER_CPU, sys.executable, "-m", "gunicorn", "benchmarks.server_app.wsgi:application",
            "--chdir", str(ROOT), "-b", f"127.0.0.1:{self.port}", "-k", "sync", "-w", str(WORKERS),
            "--timeout", "30", "--graceful-timeout", "2", "--worker-tmp-dir", "/dev/shm", "--log-level", "warning",
        ]  # fmt: skip
        environment = {**os.environ, **env, "BENCH_SERVER_CONFIG": config, "PYTHONPATH": str(ROOT)}
        environment["DJANGO_SETTINGS_MODULE"] = "benchmarks.server_app.settings"
        self.proc = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the view answers 200 (every worker booted and answering takes the warm-up run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InvalidRun(f"gunicorn ({self.config}) exited: {self.output()}")
            try:
                status, _ = get(self.url, {"X-Forwarded-For": "10.255.255.1", "X-Tenant": "ready"})
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                return
            raise InvalidRun(f"gunicorn ({self.config}) answered {status}: {self.output()}")
        raise InvalidRun(f"gunicorn ({self.config}) did not answer within {timeout:.0f} s: {self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s; the log is removed."""
        harness.stop_server(self.proc, self.log, 10.0)


def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One GET: status and body (HTTP errors are answers too)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_wrk(server: Server, script: str, seconds: float, watched: Watched) -> Result:
    """wrk on ``CLIENT_CPU`` against ``server`` for ``seconds``; wrk's numbers and everyone's CPU."""
    command = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(seconds, 1):.0f}s",
               "--timeout", "5s", "--latency", "-s", script, server.url]  # fmt: skip
    before, children = watched.snapshot(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired as expired:  # run() has killed it
        raise InvalidRun(f"wrk did not finish within {expired.timeout:.0f} s") from expired
    after, wrk = watched.snapshot(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not done.stdout.strip():
        raise InvalidRun(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary["non_2xx"] or summary["socket_errors"]:
        raise InvalidRun(
            f"{server.config}: {summary['non_2xx']} non-2xx answers and {summary['socket_errors']} socket errors "
            f"of {summary['requests']} requests; nothing may be refused or lost\n{done.stdout}\n{server.output()}"
        )
    cpu = {group: after[group] - before[group] for group in before}
    cpu["wrk"] = wrk.ru_utime + wrk.ru_stime - children.ru_utime - children.ru_stime
    return Result(summary["requests"], summary["duration_us"] / 1e6, summary["p50_us"] / 1e3, summary["p99_us"] / 1e3, cpu)


def measure(config: Config, env: dict[str, str], script: str, warmup: float, seconds: float, watched: Watched) -> None:
    server = Server(config.name, env)
    try:
        server.wait_ready()
        run_wrk(server, script, warmup, watched)  # connections, imports, caches, breakers: not counted
        config.results.append(run_wrk(server, script, seconds, watched))
    finally:
        server.stop()


def check(env: dict[str, str]) -> int:
    """The resilience configuration applies: with a route rate of 2/min the middleware refuses a
    client's third request (429), and so do the DRF throttles with rates of 2/min; the view sees the
    route's 2 s deadline, and so does Postgres (``statement_timeout``)."""
    ok = True
    tiny, huge = "2/min", "9999999/h"
    phases = (
        ("route rate", {"BENCH_SERVER_ROUTE_RATE": tiny}),
        ("throttles", {"BENCH_SERVER_RATE": tiny, "BENCH_SERVER_ROUTE_RATE": huge}),
    )
    for phase, (what, rates) in enumerate(phases):
        print(f"## {what} {tiny}\n")
        server = Server("resilience", {**env, **rates, "BENCH_SERVER_PROBE": "1"})
        try:
            server.wait_ready()  # the readiness request is another client's
            statuses = []
            for n in range(3):
                status, body = get(server.url, {"X-Forwarded-For": f"10.200.{phase}.1", "X-Tenant": f"check-{phase}"})
                statuses.append(status)
                print(f"- request {n + 1}: {status} {body.decode(errors='replace')}")
            other, body = get(server.url, {"X-Forwarded-For": f"10.201.{phase}.1", "X-Tenant": f"other-{phase}"})
            print(f"- another client: {other} {body.decode(errors='replace')}\n")
        finally:
            server.stop()
        ok = ok and statuses == [200, 200, 429] and other == 200
    print("check: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


def redis_process(client: Any) -> int | None:
    """The pid of the Redis server, if it runs on this machine (its CPU is then counted)."""
    pid = int(client.info("server")["process_id"])
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def create_database(name: str) -> None:
    import psycopg

    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')  # the view needs no table: no migrate


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(configs: dict[str, Config], rounds: int, seconds: float) -> None:
    none = configs["none"].median(lambda r: r.rate)
    rows = []
    for c in configs.values():
        rate = c.median(lambda r: r.rate)
        rows.append([
            c.name, f"{rate:,.0f}", f"{rate / none:.0%}", f"{c.median(lambda r: r.p50_ms):.2f}",
            f"{c.median(lambda r: r.p99_ms):.2f}",
            *(f"{c.median(methodcaller('per_1000', g)):,.0f}" for g in ("gunicorn", "wrk", "redis", "postgres")),
            f"{c.median(lambda r: r.cpu['gunicorn'] / r.seconds):.0%}",
        ])  # fmt: skip
    print(f"## One DRF view in gunicorn: {WORKERS} sync workers on CPU 1, wrk -t1 -c{CONNECTIONS} on CPU 0 "
          f"({rounds} round{'s' if rounds > 1 else ''} × {seconds:g} s, medians)\n")  # fmt: skip
    headers = ["configuration", "req/s", "vs none", "p50 ms", "p99 ms", "CPU ms/1k req: gunicorn", "wrk", "redis",
               "postgres", "CPU 1 busy"]  # fmt: skip
    print(harness.table(headers, rows, "lrrrrrrrrr"))
    ours = configs["resilience"].median(lambda r: r.rate)
    drf = configs["drf"].median(lambda r: r.rate)
    floor = configs["pings"].median(lambda r: r.rate)
    print("\n## Targets\n")
    print(f"- {'PASS' if ours >= TARGET_NONE * none else 'FAIL'}: resilience ≥ {TARGET_NONE:.0%} of none ({ours / none:.1%}); "
          f"two bare round trips reach {floor / none:.1%}{_out_of_reach(floor / none, TARGET_NONE)}")  # fmt: skip
    print(f"- {'PASS' if ours >= TARGET_DRF * drf else 'FAIL'}: resilience ≥ {TARGET_DRF} × drf ({ours / drf:.2f}×); "
          f"two bare round trips reach {floor / drf:.2f}×{_out_of_reach(floor / drf, TARGET_DRF)}")  # fmt: skip
    print(f"\nTwo round trips alone (pings) leave {floor / none:.1%} of none; "
          f"resilience reaches {ours / floor:.1%} of that floor.")  # fmt: skip


def _out_of_reach(floor: float, target: float) -> str:
    """What the two-round-trip floor says of a target in this run: no stack making the two decisions
    the issue allows (one before authentication, one after) can do better than two bare PINGs."""
    return " (out of reach in this run for any stack making those two round trips)" if floor < target else ""


def main(argv: list[str] | None = None) -> int:
    args = harness.redis_arguments(__doc__.splitlines()[0], argv, {"--check": "show that the resilience setup applies"})
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"{' and '.join(missing)} not found (apt-get install wrk; taskset is util-linux); cannot measure.", file=sys.stderr)
        return 1
    client = redis.Redis.from_url(args.redis)
    if not harness.reachable(client, args.redis):
        return 1
    started = time.perf_counter()
    prefix = f"bench-server-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    database = f"bench_server_{os.getpid()}"
    env = {"BENCH_SERVER_DB": database, "BENCH_SERVER_REDIS": args.redis, "BENCH_SERVER_PREFIX": prefix}
    rounds, warmup, seconds = (1, 1, 2) if args.quick else (3, 2, 8)
    with tempfile.NamedTemporaryFile("w", prefix="bench-server-", suffix=".lua") as script:
        script.write(WRK_SCRIPT % {"clients": CLIENTS})
        script.flush()
        try:
            create_database(database)
            if args.check:
                return check(env)
            configs = {name: Config(name) for name in CONFIGS}
            watched = Watched(redis_process(client), database)
            order = list(configs.values())
            for r in range(rounds):
                for config in order[r % len(order) :] + order[: r % len(order)]:
                    measure(config, env, script.name, warmup, seconds, watched)
            report(configs, rounds, seconds)
        except InvalidRun as invalid:
            print(f"Invalid run: {invalid}", file=sys.stderr)
            return 1
        finally:
            drop_database(database)
            harness.cleanup(client, prefix)
    print(f"\nTook {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
