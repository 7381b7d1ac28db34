"""What a worker's memory costs: RSS with 1,000 breakers (state shared through Redis), RSS with
100,000 identities in the in-process rate-limit engine, and what survives 10,000 requests through
the middleware and the DRF throttles (``tracemalloc``: nothing per request may stay behind).

    python benchmarks/memory.py [--quick] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from benchmarks import harness  # noqa: E402


def rss_kib() -> int:
    """This process's resident set size (``/proc/self/status``), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def setup_django(url: str, prefix: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "resilience"],
        DATABASES={},
        ROOT_URLCONF="benchmarks.memory",
        MIDDLEWARE=["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"],
        REST_FRAMEWORK={
            "UNAUTHENTICATED_USER": None,
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_THROTTLE_CLASSES": ["resilience.throttling.IPRateThrottle", "resilience.throttling.TenantRateThrottle"],
            "DEFAULT_THROTTLE_RATES": {"ip": "9999999/h", "tenant": "9999999/h"},
        },
        RESILIENCE={
            "REDIS": url,
            "KEY_PREFIX": prefix,
            "HISTORY": False,
            "TENANT_RESOLVER": "benchmarks.drf.tenant_from_header",
            "RATE_LIMITS": {"ip": "9999999/h"},
            "ROUTES": [{"path": "/ping/", "timeout": 2.0}],
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def _view() -> object:
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class Ping(APIView):  # type: ignore[misc]
        def get(self, request: object) -> Response:
            return Response({"ok": True})

    return Ping.as_view()


def _urlpatterns() -> list[object]:
    from django.conf import settings

    if not settings.configured:  # run as a script: Django is set up later, then imports this module again
        return []
    from django.urls import path

    return [path("ping/", _view())]


urlpatterns = _urlpatterns()  # ROOT_URLCONF: this module, as Django imports it


def breakers_rss(count: int) -> tuple[int, int]:
    """RSS (KiB) before and after ``count`` breakers, each called once (shared state through Redis)."""
    from resilience import circuit_breaker

    gc.collect()
    before = rss_kib()
    for i in range(count):
        circuit_breaker(f"memory-bench-{i}").call(int)
    gc.collect()
    return before, rss_kib()


def identities_rss(count: int) -> tuple[int, int, int]:
    """RSS (KiB) before and after ``count`` identities hit the in-process engine, and the keys it kept."""
    from resilience.core.gcra import Limit
    from resilience.storage.memory.ratelimit import MemoryRateLimitStore

    store = MemoryRateLimitStore()
    gc.collect()
    before = rss_kib()
    for i in range(count):
        store.hit([Limit(f"k:{{rl}}:ip:{i:032x}", 100, 60.0, 100)])
    gc.collect()
    return before, rss_kib(), len(store)


def requests_survivors(count: int) -> tuple[int, list[str]]:
    """Bytes allocated during ``count`` requests (after a warm-up) that are still alive after them, and
    the largest places they were allocated."""
    import io

    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()  # what gunicorn calls (Django's test Client connects signals per request)

    def get(n: int) -> str:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/ping/", "SERVER_NAME": "bench", "SERVER_PORT": "80",
            "REMOTE_ADDR": f"10.8.{n % 200 >> 8}.{n % 200 & 255}", "HTTP_X_TENANT": f"tenant-{n % 50}",
            "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        status: list[str] = []
        body = handler(environ, lambda s, headers, exc_info=None: status.append(s))
        b"".join(body)
        body.close()
        return status[0]

    for n in range(200):  # warm-up: scripts loaded, connections open, caches filled
        assert get(n).startswith("200"), get(n)
    gc.collect()
    tracemalloc.start(10)
    first = tracemalloc.take_snapshot()
    for n in range(count):
        assert get(n).startswith("200")
    gc.collect()
    second = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ours = [tracemalloc.Filter(True, "*/resilience/*"), tracemalloc.Filter(True, "*/rest_framework/*"),
            tracemalloc.Filter(True, "*/django/*")]  # fmt: skip
    diff = [d for d in second.filter_traces(ours).compare_to(first.filter_traces(ours), "lineno") if d.size_diff > 0]
    top = [
        f"{d.traceback[0].filename.rsplit('/site-packages/', 1)[-1]}:{d.traceback[0].lineno} +{d.size_diff} B" for d in diff[:5]
    ]
    return sum(d.size_diff for d in diff), top


def main(argv: list[str] | None = None) -> int:
    args = harness.redis_arguments(__doc__.splitlines()[0], argv)
    client = redis.Redis.from_url(args.redis)
    if not harness.reachable(client, args.redis):
        return 1
    prefix = f"bench-memory-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    setup_django(args.redis, prefix)
    started = time.perf_counter()
    n_breakers, n_identities, n_requests = (100, 10_000, 1_000) if args.quick else (1_000, 100_000, 10_000)
    try:
        survivors, top = requests_survivors(n_requests)  # first: the breakers below would refresh their windows during it
        b0, b1 = breakers_rss(n_breakers)
        i0, i1, kept = identities_rss(n_identities)
        print("## A worker's memory\n")
        rows = [
            [f"{n_breakers:,} breakers, state shared through Redis", f"{b1 - b0:,}",
             f"{(b1 - b0) * 1024 / n_breakers:,.0f} B each"],
            [f"{n_identities:,} identities, in-process rate-limit engine", f"{i1 - i0:,}",
             f"{kept:,} keys kept (its bound)"],
            [f"{n_requests:,} requests: allocations still alive after them", f"{survivors / 1024:,.1f}",
             f"{survivors / n_requests:,.1f} B per request"],
        ]  # fmt: skip
        print(harness.table(["what", "KiB", "per item"], rows, "lrr"))
        print("\nLargest survivors (file:line):", "; ".join(top) if top else "none")
        print(f"\nTook {time.perf_counter() - started:.1f} s.")
    finally:
        from resilience import breakers

        breakers.reload()
        harness.cleanup(client, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
