"""The DRF path users run: ``APIView.check_throttles`` with ``IPRateThrottle`` and
``TenantRateThrottle`` on Redis, against redis-py's PING (the floor of any Redis decision) and DRF's
own ``AnonRateThrottle`` on django-redis, measured in one run, in rotating interleaved rounds. A
bare round trip (a ``PING`` written and its ``+PONG`` read on a raw socket: the least any client
can do) is timed beside them: an exact decision makes at least one, so it says which targets a run
of this machine leaves within reach.

Every variant builds the same fresh Django and DRF request for each call (a real request is new
each time: nothing cached on it may carry over), and that building alone is timed too and taken
off. Clients cycle over many addresses and tenants, so DRF's history lists stay short.

    python benchmarks/drf.py [--quick] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from benchmarks import harness  # noqa: E402

IDENTITIES = 20_000
BIG = 9_999_999  # per hour: a rate nothing reaches here (the path is timed, not the refusal)
TARGET_PING = 1.5  # ours ≤ 1.5 × PING
TARGET_DRF = 3.0  # DRF's AnonRateThrottle ≥ 3 × ours


def tenant_from_header(request: Any) -> str | None:
    """The benchmark's TENANT_RESOLVER: the tenant a gateway put in a header."""
    return request.META.get("HTTP_X_TENANT")


def setup_django(url: str, prefix: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="benchmark-only-not-secret",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "resilience"],
        DATABASES={},
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "drf": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": f"{prefix}:drf"},
        },
        REST_FRAMEWORK={
            "UNAUTHENTICATED_USER": None,
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_THROTTLE_RATES": {"ip": f"{BIG}/h", "tenant": f"{BIG}/h", "anon": f"{BIG}/s"},
        },
        RESILIENCE={
            "REDIS": url,
            "KEY_PREFIX": f"{prefix}:res",
            "HISTORY": False,
            "TENANT_RESOLVER": "benchmarks.drf.tenant_from_header",
        },  # fmt: skip
        LOGGING_CONFIG=None,
    )
    django.setup()


def variants(url: str) -> dict[str, harness.Variant]:
    from django.core.cache import caches
    from django.http import HttpRequest
    from rest_framework.request import Request
    from rest_framework.throttling import AnonRateThrottle
    from rest_framework.views import APIView

    from resilience.throttling import IPRateThrottle, TenantRateThrottle

    class DjangoRedisAnon(AnonRateThrottle):  # type: ignore[misc]
        cache = caches["drf"]

    class Ours(APIView):  # type: ignore[misc]
        throttle_classes = [IPRateThrottle, TenantRateThrottle]

    class Theirs(APIView):  # type: ignore[misc]
        throttle_classes = [DjangoRedisAnon]

    clients = [(f"10.{i >> 8 & 255}.{i & 255}.9", f"tenant-{i}") for i in range(IDENTITIES)]

    def request_for(client: tuple[str, str]) -> Any:
        http = HttpRequest()
        http.method = "GET"
        http.META = {"REMOTE_ADDR": client[0], "HTTP_X_TENANT": client[1], "SERVER_NAME": "bench", "SERVER_PORT": "80"}
        return Request(http)

    def cycling(call: Callable[[Any], Any]) -> Callable[[int], Any]:
        step = itertools.cycle(clients).__next__

        def run(n: int) -> Any:
            result = None
            for _ in itertools.repeat(None, n):
                result = call(request_for(step()))
            return result

        return run

    ours, theirs = Ours(), Theirs()
    ping = redis.Redis.from_url(url)
    bare = harness.bare_round_trip(url)

    def check(view: Any) -> Callable[[Any], bool]:
        def run(request: Any) -> bool:
            view.check_throttles(request)  # raises Throttled if refused: never here
            return True

        return run

    return {
        "build": harness.Variant("building the Django + DRF request (taken off the others)", cycling(lambda r: True), True),
        "ping": harness.Variant("redis-py PING (+ building the request)", cycling(lambda r: ping.ping()), True, 200),
        "bare": harness.Variant("a bare round trip: PING on a raw socket (+ the request)", cycling(lambda r: bare()), True, 200),
        "ours": harness.Variant("resilience IPRateThrottle + TenantRateThrottle", cycling(check(ours)), True, 200),
        "drf": harness.Variant("DRF AnonRateThrottle on django-redis", cycling(check(theirs)), True, 200),
    }


def commands_per_check(variant: harness.Variant, calls: int) -> tuple[float, str]:
    variant.loop(20)
    with harness.SendCounter() as counter:
        variant.loop(calls)
    per = {name: n / calls for name, n in sorted(counter.commands.items())}
    return counter.caller / calls, ", ".join(f"{name} {n:.2f}" for name, n in per.items())


def main(argv: list[str] | None = None) -> int:
    args = harness.redis_arguments(__doc__.splitlines()[0], argv)
    client = redis.Redis.from_url(args.redis)
    if not harness.reachable(client, args.redis):
        return 1
    prefix = f"bench-drf-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    setup_django(args.redis, prefix)
    started = time.perf_counter()
    try:
        found = variants(args.redis)
        rounds, target = (3, 0.05) if args.quick else (15, 0.4)
        harness.measure(list(found.values()), rounds, target)
        build = found["build"]
        extra = {k: harness.paired_extra(v, build) for k, v in found.items() if k != "build"}
        trips = {k: commands_per_check(found[k], 500 if args.quick else 2_000) for k in ("ping", "ours", "drf")}
        rows = [
            [v.name, harness.fmt_ns(v.median), harness.fmt_ns(extra[k]) if k in extra else "–",
             f"{extra[k] / extra['ping']:.2f}×" if k in extra else "–", f"{trips[k][0]:.2f}" if k in trips else "–",
             trips[k][1] if k in trips else "–"]
            for k, v in found.items()
        ]  # fmt: skip
        print("## DRF check_throttles: IP + tenant throttles on Redis vs PING and DRF's AnonRateThrottle\n")
        print(harness.table(["variant", "ns/call (median)", "ns without the request", "× PING", "round trips", "commands"],
                            rows, "lrrrrl"))  # fmt: skip
        ours_ping, drf_ours = extra["ours"] / extra["ping"], extra["drf"] / extra["ours"]
        print("\n## Targets\n")
        print(f"- {'PASS' if ours_ping <= TARGET_PING else 'FAIL'}: ours ≤ {TARGET_PING} × PING ({ours_ping:.2f}×)")
        print(f"- {'PASS' if drf_ours >= TARGET_DRF else 'FAIL'}: DRF's AnonRateThrottle ≥ {TARGET_DRF} × ours ({drf_ours:.2f}×)")
        print(f"- {'PASS' if trips['ours'][0] == 1 else 'FAIL'}: ours makes one round trip ({trips['ours'][0]:.2f})")
        bare = extra["bare"]
        print(f"\nAn exact decision makes at least one round trip; a bare one costs {bare / extra['ping']:.2f}× PING here, "
              f"DRF's AnonRateThrottle {extra['drf'] / bare:.2f}× that. DRF's throttle ≥ {TARGET_DRF}× ours leaves ours "
              f"{extra['drf'] / TARGET_DRF - bare:,.0f} ns beyond a bare round trip (the script's Redis time included); "
              f"ours takes {extra['ours'] - bare:,.0f} ns.")  # fmt: skip
        print(f"\nTook {time.perf_counter() - started:.1f} s.")
    finally:
        harness.cleanup(client, prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
