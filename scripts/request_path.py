"""Measure the path of one request through the library: how often it hops between resilience modules.

    cd <checkout> && /work/main/.venv/bin/python scripts/request_path.py [--json] [--trace] [--breaker]
        [--new-connection] [--db NAME] [--keep-db] [--warmup N] [--repeat N]

The request: WSGI handler → SecurityMiddleware → ``ResilienceMiddleware`` (route ``^/ping/$``, its 2 s
deadline, the middleware's ``RATE_LIMITS["ip"]``) → DRF ``APIView`` (``IPRateThrottle`` and
``TenantRateThrottle``) → the view, which runs ``SELECT 1`` through the ``resilience.backends.postgresql``
backend (each statement guarded by its breaker; ``--breaker`` wraps it in ``circuit_breaker("hops")`` too)
→ the response closed, as a WSGI server would. Real Postgres (own database, created if missing and
dropped at the end) and real Redis (database 14, a key prefix of this process, its keys deleted at the end).

After ``--warmup`` requests (imports, breakers, connections, caches all warm), ``--repeat`` requests are
measured one at a time with ``sys.setprofile`` on the request's thread; the last is reported (and whether
every measured request gave the same numbers). Only Python ``call``/``return`` events count, each
looked at as a step between the frame and its caller (``frame.f_back``), modules named by
``f_globals["__name__"]``; a module is a resilience module when it is ``resilience`` or under it:

- hop: a ``call`` whose caller's module and callee's module are two different resilience modules, or a
  ``return`` from a resilience module to a different resilience module (a call and its return are two
  hops; a generator's resume is a call, its yield a return);
- enter / leave: a call into a resilience module from any other module (Django, DRF, psycopg, the
  stdlib...), and the return back out; counted apart, never as hops, even when the code outside was
  itself called from another resilience module (middleware → Django → DRF → throttling is an enter);
- calls and returns within one module are not counted.

Other threads (the Redis store's sync thread, the Postgres watchdog) are not profiled. The DRF
throttle phase is from the call of DRF's ``APIView.check_throttles`` to its return.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
import types
from collections import Counter
from typing import Any

REDIS_URL = "redis://127.0.0.1:6379/14"
PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"}


def _is_ours(module: str) -> bool:
    return module == "resilience" or module.startswith("resilience.")


def _module(frame: Any) -> str:
    if frame is None:
        return "<none>"
    return frame.f_globals.get("__name__") or "?"


# --- setup -------------------------------------------------------------------------------------------


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_redis_keys(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def configure(db_name: str, key_prefix: str, new_connection: bool) -> None:
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="request-path-measurement-not-secret-" + "x" * 32,
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework",
            "resilience",
        ],
        DATABASES={
            "default": {
                "ENGINE": "resilience.backends.postgresql",
                "NAME": db_name,
                **PG,
                "CONN_MAX_AGE": 0 if new_connection else 60,
            }
        },
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "resilience.middleware.ResilienceMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        ROOT_URLCONF="request_path_urls",
        RESILIENCE={
            "REDIS": REDIS_URL,
            "KEY_PREFIX": key_prefix,
            "HISTORY": False,
            "ROUTES": [{"path": "/ping/", "timeout": 2.0}],  # "path" is exact or a glob; "^/ping/$" is path_regex's syntax
            "RATE_LIMITS": {"ip": "100000/min"},
        },
        REST_FRAMEWORK={
            "DEFAULT_THROTTLE_CLASSES": [
                "resilience.throttling.IPRateThrottle",
                "resilience.throttling.TenantRateThrottle",
            ],
            "DEFAULT_THROTTLE_RATES": {"ip": "100000/min", "tenant": "100000/min"},
        },
        LOGGING_CONFIG=None,
    )


def install_urls(explicit_breaker: bool) -> None:
    from django.db import connection
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    import resilience

    class Ping(APIView):
        def get(self, request: Any) -> Any:
            if explicit_breaker:
                with resilience.circuit_breaker("hops"), connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                    row = cursor.fetchone()
            else:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                    row = cursor.fetchone()
            return Response({"ok": row[0] == 1})

    module = types.ModuleType("request_path_urls")
    module.urlpatterns = [path("ping/", Ping.as_view())]  # type: ignore[attr-defined]
    sys.modules["request_path_urls"] = module


# --- one request -------------------------------------------------------------------------------------


def wsgi_request(handler: Any) -> int:
    """GET /ping/ through Django's WSGI handler, response closed (request_finished) as a server does."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/ping/",
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "203.0.113.7",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status: list[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        status.append(line)

    response = handler(environ, start_response)
    try:
        b"".join(response)
    finally:
        response.close()
    return int(status[0].split()[0])


class Recorder:
    """The profile hook: hops, enters and leaves of resilience modules on this thread."""

    def __init__(self, throttle_code: Any) -> None:
        self.throttle_code = throttle_code
        self.throttle_frame: Any = None
        self.hops: Counter[tuple[str, str, str]] = Counter()  # (kind, from module, to module)
        self.throttle_hops: Counter[tuple[str, str, str]] = Counter()
        self.entered: Counter[str] = Counter()  # resilience module entered from outside
        self.left: Counter[str] = Counter()
        self.touched: set[str] = set()
        self.throttle_touched: set[str] = set()
        self.trace: list[str] = []
        self.hop_count = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            if frame.f_code is self.throttle_code and self.throttle_frame is None:
                self.throttle_frame = frame
            callee = frame.f_globals.get("__name__") or "?"
            if not _is_ours(callee):
                return
            caller = _module(frame.f_back)
            self.touched.add(callee)
            if self.throttle_frame is not None:
                self.throttle_touched.add(callee)
            if _is_ours(caller):
                if caller != callee:
                    self._hop("call", caller, callee, frame)
            else:
                self.entered[callee] += 1
                self.trace.append(f"  enter  {caller} -> {callee}:{frame.f_code.co_qualname}")
        elif event == "return":
            callee = frame.f_globals.get("__name__") or "?"
            if _is_ours(callee):
                caller = _module(frame.f_back)
                if _is_ours(caller):
                    if caller != callee:
                        self._hop("return", callee, caller, frame)
                else:
                    self.left[callee] += 1
                    self.trace.append(f"  leave  {callee}:{frame.f_code.co_qualname} -> {caller}")
            if frame is self.throttle_frame:
                self.throttle_frame = None

    def _hop(self, kind: str, source: str, target: str, frame: Any) -> None:
        self.hops[(kind, source, target)] += 1
        self.hop_count += 1
        inside = self.throttle_frame is not None
        if inside:
            self.throttle_hops[(kind, source, target)] += 1
        arrow = "->" if kind == "call" else "<-"
        where = " [throttles]" if inside else ""
        self.trace.append(f"{self.hop_count:4d} {kind:6s} {source} {arrow} {target}:{frame.f_code.co_qualname}{where}")


def measure(handler: Any) -> tuple[int, Recorder]:
    from rest_framework.views import APIView

    recorder = Recorder(APIView.check_throttles.__code__)
    sys.setprofile(recorder)
    try:
        status = wsgi_request(handler)
    finally:
        sys.setprofile(None)
    return status, recorder


# --- report ------------------------------------------------------------------------------------------


def pairs(hops: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Hops by unordered module pair: total, calls a→b, returns b→a, calls b→a, returns a→b."""
    table: dict[tuple[str, str], Counter[str]] = {}
    for (kind, source, target), count in hops.items():
        a, b = sorted((source, target))
        forward = (source, target) == (a, b)
        table.setdefault((a, b), Counter())[f"{kind}_{'ab' if forward else 'ba'}"] += count
    rows = [
        {
            "a": a,
            "b": b,
            "hops": sum(c.values()),
            "calls_a_to_b": c["call_ab"],
            "calls_b_to_a": c["call_ba"],
            "returns_a_to_b": c["return_ab"],
            "returns_b_to_a": c["return_ba"],
        }
        for (a, b), c in table.items()
    ]
    return sorted(rows, key=lambda row: (-row["hops"], row["a"], row["b"]))


def summary(recorder: Recorder, status: int) -> dict[str, Any]:
    hop_modules = {m for (_, s, t) in recorder.hops for m in (s, t)}
    throttle_modules = {m for (_, s, t) in recorder.throttle_hops for m in (s, t)}
    return {
        "status": status,
        "hops": sum(recorder.hops.values()),
        "hop_calls": sum(c for (k, _, _), c in recorder.hops.items() if k == "call"),
        "hop_returns": sum(c for (k, _, _), c in recorder.hops.items() if k == "return"),
        "modules_touched": len(recorder.touched),
        "modules_in_hops": len(hop_modules),
        "enters_from_outside": sum(recorder.entered.values()),
        "leaves_to_outside": sum(recorder.left.values()),
        "throttle_phase": {
            "hops": sum(recorder.throttle_hops.values()),
            "modules_touched": len(recorder.throttle_touched),
            "modules_in_hops": len(throttle_modules),
            "modules": sorted(recorder.throttle_touched),
            "pairs": pairs(recorder.throttle_hops),
        },
        "modules": sorted(recorder.touched),
        "entered": dict(sorted(recorder.entered.items(), key=lambda kv: (-kv[1], kv[0]))),
        "pairs": pairs(recorder.hops),
    }


def _pair_table(rows: list[dict[str, Any]], limit: int) -> list[str]:
    width = max([len(r["a"]) + len(r["b"]) + 5 for r in rows[:limit]] + [20])
    lines = [f"  {'module pair':<{width}} {'hops':>5} {'a→b call/ret':>13} {'b→a call/ret':>13}"]
    for row in rows[:limit]:
        name = f"{row['a']} <-> {row['b']}"
        ab = f"{row['calls_a_to_b']}/{row['returns_a_to_b']}"
        ba = f"{row['calls_b_to_a']}/{row['returns_b_to_a']}"
        lines.append(f"  {name:<{width}} {row['hops']:>5} {ab:>13} {ba:>13}")
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more pairs, {sum(r['hops'] for r in rows[limit:])} hops")
    return lines


def render(result: dict[str, Any], tree: str, stable: bool, repeat: int, seconds: float) -> str:
    t = result["throttle_phase"]
    split = f"({result['hop_calls']} calls, {result['hop_returns']} returns)"
    lines = [
        f"request path: GET /ping/ on {tree}  (HTTP {result['status']}, last of {repeat} measured requests"
        f"{', all identical' if stable else ', NOT all identical'}; {seconds:.1f} s)",
        "",
        f"  hops between resilience modules     {result['hops']:>5}  {split}",
        f"  resilience modules touched          {result['modules_touched']:>5}  ({result['modules_in_hops']} of them in hops)",
        f"  enters from outside / leaves        {result['enters_from_outside']:>5} / {result['leaves_to_outside']}",
        f"  hops inside DRF check_throttles     {t['hops']:>5}  ({t['modules_touched']} modules touched there)",
        "",
        "hops by module pair (top 15)",
        *_pair_table(result["pairs"], 15),
        "",
        "hops by module pair inside DRF check_throttles",
        *_pair_table(t["pairs"], 15),
        "",
        "resilience modules touched",
        *(f"  {m}" for m in result["modules"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON after the table")
    parser.add_argument("--trace", action="store_true", help="print every hop, enter and leave, in order")
    parser.add_argument("--breaker", action="store_true", help='wrap the query in circuit_breaker("hops") too')
    parser.add_argument("--new-connection", action="store_true", help="CONN_MAX_AGE=0: each request connects anew")
    parser.add_argument("--db", default="hops_" + re.sub(r"\W", "_", os.path.basename(os.getcwd()))[:40], help="Postgres db")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    started = time.monotonic()
    sys.path.insert(0, os.getcwd())  # the checkout's ``resilience``, not an installed one
    key_prefix = f"hops-{os.getpid()}-{int(time.time())}"
    ensure_database(args.db)
    try:
        import django

        configure(args.db, key_prefix, args.new_connection)
        django.setup()
        import resilience

        tree = os.path.dirname(os.path.dirname(os.path.abspath(resilience.__file__)))
        install_urls(args.breaker)
        from django.core.handlers.wsgi import WSGIHandler

        handler = WSGIHandler()
        for _ in range(args.warmup):
            status = wsgi_request(handler)
            if status != 200:
                print(f"warm-up request answered {status}, not 200", file=sys.stderr)
                return 1
        from resilience import middleware

        route = middleware.route_table().match("/ping/", None)
        if route is None or route.timeout != 2.0:
            print(f"the /ping/ route did not match with its 2 s deadline: {route!r}", file=sys.stderr)
            return 1
        results = []
        for _ in range(max(args.repeat, 1)):
            status, recorder = measure(handler)
            results.append((summary(recorder, status), recorder))
        result, recorder = results[-1]
        stable = all(r["pairs"] == result["pairs"] and r["modules"] == result["modules"] for r, _ in results)
        if args.trace:
            print("\n".join(recorder.trace))
            print()
        print(render(result, tree, stable, len(results), time.monotonic() - started))
        if args.json:
            print(json.dumps({"tree": tree, "stable": stable, **result}, indent=2))
        return 0 if result["status"] == 200 else 1
    finally:
        from django.db import connections

        connections.close_all()
        delete_redis_keys(key_prefix)
        if not args.keep_db:
            drop_database(args.db)


if __name__ == "__main__":
    sys.exit(main())
