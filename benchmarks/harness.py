"""Timing harness shared by the benchmark scripts: GC-paused batches, calibrated interleaved rounds, Markdown tables,
and a counter of what goes to Redis.

The machine may be shared and noisy, so the scripts time every variant in the same process, in
rounds whose order rotates, and report medians; nothing here prints.
"""

from __future__ import annotations

import functools
import gc
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

R = TypeVar("R")


class Sampled(Protocol):
    """Anything ``interleave`` can time: a batch size and the ns per call of each round."""

    samples: list[float]
    calls: int


S = TypeVar("S", bound=Sampled)


@dataclass
class Variant:
    """One thing to time: ``loop(n)`` makes ``n`` calls and returns the last result, which must equal ``expect``."""

    name: str
    loop: Callable[[int], Any]
    expect: Any = 1  # guards against timing a broken setup
    first_batch: int = 2_000  # calibration starts here; smaller for variants doing I/O on every call
    samples: list[float] = field(default_factory=list)  # ns per call, one per round
    calls: int = 0  # calls per round, set by calibration

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def loop(call: Callable[..., Any], *args: Any) -> Callable[[int], Any]:
    """A timing loop calling ``call(*args)`` ``n`` times; every variant pays the same loop cost."""
    repeat = itertools.repeat

    def run(n: int) -> Any:
        result = None
        for _ in repeat(None, n):
            result = call(*args)
        return result

    return run


def timed(run: Callable[[int], R], n: int) -> tuple[R, float]:
    """``run(n)`` with the garbage collector paused (like timeit): its result and ns per call."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        result = run(n)
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return result, elapsed / n


def time_variant(variant: Variant, n: int) -> float:
    """ns per call over one batch of ``n`` calls of ``variant``, checking the last result."""
    result, per_call = timed(variant.loop, n)
    if result != variant.expect:
        raise RuntimeError(f"{variant.name}: the last call returned {result!r}, not {variant.expect!r}")
    return per_call


def calibrate(time_batch: Callable[[int], float], target_s: float, first: int = 2_000, limit: int = 10_000_000) -> int:
    """Calls per round of about ``target_s`` seconds: a warm-up batch, then ×4 until a batch lasts 20 ms (or ``limit``)."""
    n = first
    time_batch(n)  # warm up: connections, caches, first-call paths
    while True:
        per_call = time_batch(n)
        if per_call * n >= 0.02e9 or n >= limit:
            break
        n *= 4
    return max(int(target_s * 1e9 / max(per_call, 1.0)), 10)


def interleave(variants: Sequence[S], rounds: int, time_batch: Callable[[S, int], float]) -> None:
    """Append one sample per round to each variant, rotating the order so no variant always runs first or last."""
    for r in range(rounds):
        shift = r % len(variants)
        for v in [*variants[shift:], *variants[:shift]]:
            v.samples.append(time_batch(v, v.calls))


def measure(variants: Sequence[Variant], rounds: int, target_s: float) -> None:
    """Calibrate each variant (from its ``first_batch``), then time them in ``rounds`` interleaved rounds."""
    for v in variants:
        v.calls = calibrate(functools.partial(time_variant, v), target_s, first=v.first_batch)
    interleave(variants, rounds, time_variant)


def fmt_ns(value: float) -> str:
    """Nanoseconds: whole numbers with separators from 100 up, one decimal below."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def spread(samples: list[float]) -> str:
    """The ``min–max`` of ``samples``, formatted as nanoseconds."""
    return f"{fmt_ns(min(samples))}–{fmt_ns(max(samples))}"


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    columns = list(zip(widths, align, strict=True))

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if a == "r" else c.ljust(w) for c, (w, a) in zip(cells, columns, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if a == "r" else "-" * (w + 2) for w, a in columns) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def bare_round_trip(url: str) -> Callable[[], bool]:
    """A Redis round trip with no client library's work: a ``PING`` written and its ``+PONG`` read on
    a raw socket of its own (AUTH first when ``url`` has a password). The least any client can do."""
    import socket
    from urllib.parse import unquote, urlsplit

    where = urlsplit(url)
    sock = socket.create_connection((where.hostname or "127.0.0.1", where.port or 6379), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(*parts: str) -> bool:
        encoded = [p.encode() for p in parts]
        sock.sendall(b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded))
        reply = sock.recv(64)
        while not reply.endswith(b"\r\n"):
            reply += sock.recv(64)
        if not reply.startswith(b"+"):
            raise RuntimeError(f"Redis answered {reply[:80]!r}")
        return True

    if where.password:
        send("AUTH", unquote(where.username or "default"), unquote(where.password))
    return functools.partial(send, "PING")


def reachable(client: Any, url: str) -> bool:
    """True when Redis answers a PING; otherwise says why the benchmark cannot compare (exit code 2)."""
    try:
        client.ping()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure to reach Redis ends the run the same way
        print(f"Redis at {url} is not reachable ({type(exc).__name__}); cannot compare.", file=sys.stderr)
        return False


class SendCounter:
    """Counts what this process sends to Redis while active, where it leaves redis-py for the socket
    (redis-py's command path and ``FastScript`` both end there): the calling thread's packets by
    command name (one per command or pipeline: a round trip each), and other threads' packets
    (resilience's background sync, which runs on a timer whatever the call rate)."""

    def __init__(self) -> None:
        from redis.connection import AbstractConnection

        self.commands: Counter[str] = Counter()
        self.background = 0
        self._cls = AbstractConnection
        self._original = AbstractConnection.send_packed_command

    @property
    def caller(self) -> int:
        return sum(self.commands.values())

    def __enter__(self) -> SendCounter:
        original, caller, commands = self._original, threading.get_ident(), self.commands

        def counting(connection: Any, command: Any, *args: Any, **options: Any) -> Any:
            if threading.get_ident() == caller:
                first = command if isinstance(command, (bytes, str)) else next(iter(command))
                first = first.encode() if isinstance(first, str) else bytes(first)
                commands[first.split(b"\r\n")[2].decode().upper()] += 1  # *<n>, $<len>, NAME
            else:
                self.background += 1
            return original(connection, command, *args, **options)

        self._cls.send_packed_command = counting
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cls.send_packed_command = self._original


def paired_extra(variant: Variant, base: Variant) -> float:
    """Median over rounds of ``variant`` − ``base`` in the same round (ns): drift of a shared machine cancels."""
    return statistics.median(a - b for a, b in zip(variant.samples, base.samples, strict=True))


def redis_arguments(description: str, argv: list[str] | None = None, flags: dict[str, str] | None = None) -> Any:
    """``--redis URL`` (default ``BENCH_REDIS_URL`` or database 14 of the local server), ``--quick``,
    and a script's own on/off ``flags`` (``{"--check": "its help"}``)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--quick", action="store_true", help="few short rounds (CI: it still runs)")
    for flag, help_text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help_text)
    return parser.parse_args(argv)


def cleanup(client: Any, prefix: str) -> int:
    """Delete every key under ``prefix`` (in batches); the count deleted."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch = []
    return deleted + (client.delete(*batch) if batch else 0)


def stop_server(proc: subprocess.Popen[Any], log: IO[Any], term_wait: float) -> None:
    """SIGTERM to a server started with ``start_new_session``'s whole group, SIGKILL after
    ``term_wait`` s; then its log file is closed and removed."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    log.close()
    Path(log.name).unlink(missing_ok=True)
