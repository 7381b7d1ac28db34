"""Throughput of a trivial DRF view through Django's full request stack, with and without ``ResilienceMiddleware``.

Run from the project root::

    .venv/bin/python benchmarks/middleware.py           # full run, ~45 s
    .venv/bin/python benchmarks/middleware.py --quick   # smoke test, ~5 s

The WSGI application (``django.core.handlers.wsgi.WSGIHandler``) is built in this process and
called with prepared WSGI environ dicts; each response is consumed and closed, as a WSGI server
would. No network and no server process: the difference between the two sides of a pair is
only the middleware's own cost. The view is an ``@api_view(["GET"])`` returning
``Response({"ok": True})``; it touches no database.

Two stacks (the middleware goes right after ``SecurityMiddleware``, as system check
``resilience.E010`` requires): a minimal one (Security, Common) and a typical one (Security,
Session, Common, Csrf, Auth, Messages). Each is measured without the middleware and with it
under each ``RESILIENCE["ROUTES"]`` configuration below. The machine this runs on may be shared
and noisy, so every variant is timed in the same process, in interleaved rounds, and the tables
report medians and ratios measured in the same run rather than absolute numbers to compare
across runs.
"""

from __future__ import annotations

import argparse
import functools
import gc
import io
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``resilience`` and ``benchmarks`` importable

from benchmarks import harness  # noqa: E402

TARGET = 0.85  # with-middleware throughput at least this fraction of without
MIDDLEWARE_PATH = "resilience.middleware.ResilienceMiddleware"
STACKS: dict[str, list[str]] = {
    "minimal": ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"],
    "typical": [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
}
# name -> (RESILIENCE["ROUTES"], deadline the view must see: None or about how many seconds)
CONFIGS: dict[str, tuple[list[dict[str, Any]], float | None]] = {
    "catch-all timeout": ([{"path": "*", "timeout": 5}], 5.0),
    "path + bulkhead": (
        [{"path": "/other-*", "timeout": 1}, {"path": "/bench/", "timeout": 5, "max_concurrency": 1000}],
        5.0,
    ),
    "URL-name route": ([{"name": "bench", "timeout": 5}, {"path": "/other-*", "timeout": 1}], 5.0),
    "no route": ([], None),
}
HEADER_CONFIG = "catch-all timeout"  # also measured with ``X-Request-Timeout: 2``
HEADER_SECONDS = 2.0
BODY = b'{"ok":true}'


def _setup(extra_urls: int) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="benchmarks.mw_urls",
        BENCH_EXTRA_URLS=extra_urls,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "rest_framework",
            "resilience",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        MIDDLEWARE=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
        RESILIENCE={"HISTORY": False, "ROUTES": []},
    )
    django.setup()


def _apply(routes: list[dict[str, Any]]) -> None:
    """Make ``routes`` the live ``RESILIENCE["ROUTES"]`` (the middleware's route table is rebuilt lazily)."""
    from django.conf import settings

    from resilience.conf import resilience_settings

    settings.RESILIENCE = {"HISTORY": False, "ROUTES": routes, "TRUSTED_PROXIES": ["127.0.0.1/32"]}  # the header is believed
    resilience_settings.reload()


def _handler(middleware: list[str]) -> Any:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = middleware
    return WSGIHandler()  # loads the middleware chain now, from settings.MIDDLEWARE


def _with_middleware(stack: list[str]) -> list[str]:
    return [stack[0], MIDDLEWARE_PATH, *stack[1:]]


def _environ(header: bool) -> dict[str, Any]:
    """A GET /bench/ as a WSGI server would hand it over (copied before each request)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/bench/",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "benchmarks/middleware.py",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if header:
        environ["HTTP_X_REQUEST_TIMEOUT"] = f"{HEADER_SECONDS:g}"
    return environ


class _StartResponse:
    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = ""

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        self.status = status
        return self.write

    def write(self, data: bytes) -> None:
        raise RuntimeError("the benchmark view does not use write()")


@dataclass
class Variant:
    stack: str
    config: str | None  # None: the stack without the middleware
    header: bool
    handler: Any
    environ: dict[str, Any]
    samples: list[float] = field(default_factory=list)  # ns per request, one per round
    calls: int = 0

    @property
    def name(self) -> str:
        config = self.config or "without middleware"
        return f"{self.stack} / {config}{' + X-Request-Timeout' if self.header else ''}"

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def prepare(self) -> None:
        if self.config is not None:
            _apply(CONFIGS[self.config][0])

    def run(self, n: int) -> tuple[str, bytes]:
        """``n`` requests; the last one's status and body."""
        handler, environ, start_response = self.handler, self.environ, _StartResponse()
        body = b""
        for _ in itertools.repeat(None, n):
            response = handler(environ.copy(), start_response)
            body = b"".join(response)
            response.close()  # request_finished, as a WSGI server does
        return start_response.status, body


def _time(variant: Variant, n: int) -> float:
    """ns per request over one batch of ``n``, with the garbage collector paused (like timeit)."""
    variant.prepare()
    variant.run(3)  # the route table is rebuilt on the first request after a settings change
    gc.collect()
    (status, body), per_call = harness.timed(variant.run, n)
    if not status.startswith("200") or body != BODY:
        raise RuntimeError(f"{variant.name}: got {status!r} {body[:200]!r}, not 200 {BODY!r}")
    return per_call


def measure(variants: list[Variant], rounds: int, target_s: float) -> None:
    """Calibrate each variant (from 50 requests, at most 1,000,000), then time them in interleaved rounds."""
    for v in variants:
        v.calls = harness.calibrate(functools.partial(_time, v), target_s, first=50, limit=1_000_000)
    harness.interleave(variants, rounds, _time)


def sanity(variants: list[Variant]) -> list[str]:
    """Check outside the timing that each variant really does what its name says."""
    from benchmarks import mw_urls
    from resilience.middleware import route_table

    problems = []
    for v in variants:
        v.prepare()
        mw_urls.PROBE = []
        try:
            v.run(2)
            seen = mw_urls.PROBE[-1]
        finally:
            mw_urls.PROBE = None
        expected = None if v.config is None else CONFIGS[v.config][1]
        if expected is not None and v.header:
            expected = min(expected, HEADER_SECONDS)
        if expected is None and seen is not None:
            problems.append(f"{v.name}: the view saw a deadline ({seen:.3f} s left), expected none")
        elif expected is not None and (seen is None or not expected - 0.5 < seen <= expected):
            problems.append(f"{v.name}: the view saw {seen!r} s left, expected about {expected:g}")
        if v.config is not None:
            for route in route_table().exact.values():
                if route.bulkhead is not None and route.bulkhead.active != 0:
                    problems.append(f"{v.name}: bulkhead {route.label} still holds {route.bulkhead.active} slot(s)")
    return problems


def _rps(ns: float) -> str:
    return f"{1e9 / ns:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run for smoke tests (< 10 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per variant (default 7, quick 5)")
    parser.add_argument("--extra-urls", type=int, default=0, help="other URL patterns listed before the benchmark's (default 0)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 7)
    target_s = 0.04 if args.quick else 0.3

    started = time.perf_counter()
    _setup(args.extra_urls)
    variants: list[Variant] = []
    for stack, middleware in STACKS.items():
        without, with_mw = _handler(middleware), _handler(_with_middleware(middleware))
        variants.append(Variant(stack, None, False, without, _environ(False)))
        variants.append(Variant(stack, None, True, without, _environ(True)))
        for config in CONFIGS:
            variants.append(Variant(stack, config, False, with_mw, _environ(False)))
            if config == HEADER_CONFIG:
                variants.append(Variant(stack, config, True, with_mw, _environ(True)))

    problems = sanity(variants)  # also the first requests: imports, caches
    gc.collect()
    gc.freeze()  # Django and the warm caches are long-lived: keep the collections between batches short
    measure(variants, rounds, target_s)
    problems += sanity(variants)  # the bulkhead counts are back to zero after the timed runs too

    urls = f", {args.extra_urls} other URL patterns before it" if args.extra_urls else ""
    checks: list[tuple[str, bool]] = []
    for stack, middleware in STACKS.items():
        names = ", ".join(m.rsplit(".", 1)[-1].removesuffix("Middleware") for m in middleware)
        print(f"## {stack.capitalize()} stack ({names}){urls}\n")
        print(f"{rounds} interleaved rounds; requests/second from the median time per request.\n")
        rows = []
        for v in variants:
            if v.stack != stack or v.config is None:
                continue
            base = next(b for b in variants if b.stack == stack and b.config is None and b.header == v.header)
            ratio = base.median / v.median
            paired = [b / w for b, w in zip(base.samples, v.samples, strict=True)]
            ok = ratio >= TARGET
            label = f"{v.config}{' + X-Request-Timeout: 2' if v.header else ''}"
            rows.append([
                label, _rps(base.median), _rps(v.median), f"{ratio:.1%}",
                f"{min(paired):.0%}–{max(paired):.0%}", f"{(v.median - base.median) / 1e3:+.1f}", "PASS" if ok else "FAIL",
            ])  # fmt: skip
            checks.append((f"{stack} stack, {label}: {ratio:.1%} of the throughput without the middleware", ok))
        headers = ["ROUTES configuration", "req/s without", "req/s with", "with ÷ without", "per-round ratio min–max",
                   "µs added per request", f"≥ {TARGET:.0%}"]  # fmt: skip
        print(harness.table(headers, rows, "lrrrrrl"))
        print()

    took = time.perf_counter() - started
    print(f"Timed in {took:.1f} s, in this process, without network; each request's response is consumed and closed.")
    print("The rows without the middleware send the same headers as the rows they are compared with.")
    print("\n## Targets\n")
    for text, ok in checks:
        print(f"- {'PASS' if ok else 'FAIL'}: {text} (target ≥ {TARGET:.0%})")
    for problem in problems:
        print(f"- WARNING: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
