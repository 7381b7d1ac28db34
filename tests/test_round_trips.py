"""What one request costs in Redis, counted by a redis-server this test owns: the middleware's
client-level limit before authentication and the DRF throttles after it are two decisions, one
script each, and nothing else reaches Redis on the request path."""

import pytest
import redis
from django.test import Client

REQUESTS = 10


def tenant_header(request):
    return request.META.get("HTTP_X_TENANT")


@pytest.fixture
def counted(settings, redis_server, key_prefix):
    settings.ROOT_URLCONF = "tests.urls_drf"
    settings.MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]
    settings.REST_FRAMEWORK = {
        "DEFAULT_THROTTLE_RATES": {"ip": "1000/min", "tenant": "1000/min", "search": "1000/min"},
        "UNAUTHENTICATED_USER": None,
    }
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": redis_server.url,
        "KEY_PREFIX": key_prefix,
        "SYNC_INTERVAL": 60,  # the breakers' background re-read stays out of the count
        "TENANT_RESOLVER": "tests.test_round_trips.tenant_header",
        "RATE_LIMITS": {"ip": "1000/min"},
        "ROUTES": [{"path": "/api/*", "timeout": 5, "rate": "1000/min"}],
    }
    server = redis.Redis(port=redis_server.port)
    yield server
    server.close()


def commands(server):
    stats = server.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


def test_a_request_through_the_middleware_and_three_drf_throttles_is_two_scripts(counted):
    client = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_TENANT="acme")
    assert client.get("/api/stacked/").status_code == 200  # loads the scripts, subscribes, lists breakers
    counted.config_resetstat()
    for _ in range(REQUESTS):
        assert client.get("/api/stacked/").status_code == 200
    seen = commands(counted)
    seen.pop("config|resetstat", None), seen.pop("info", None)
    # Two round trips: the middleware's script (IP + the route's rate), then the throttles' (IP,
    # tenant, scope). Redis counts the commands inside the scripts too: one TIME each, and a GET
    # and a SET PX per limit (every limit admitted). Nothing else: no breaker, budget or cache traffic.
    assert seen == {"evalsha": 2 * REQUESTS, "time": 2 * REQUESTS, "get": 5 * REQUESTS, "set": 5 * REQUESTS}
