"""The library's answers under real servers, ASGI (uvicorn) and WSGI (gunicorn): a breaker's own
timeout is a 504, an open breaker a 503, and none of them is a 500 or a django.request ERROR line."""

import pytest
import requests

from .live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "WARNING"}},
}


def overrides():
    return {
        "ROOT_URLCONF": "tests.urls_live",
        "MIDDLEWARE": MIDDLEWARE,
        "LOGGING": LOGGING,
        "RESILIENCE": {"HISTORY": False, "ROUTES": [{"path": "*", "timeout": 5}]},
    }


@pytest.mark.parametrize("asgi", [True, False], ids=["uvicorn", "gunicorn"])
def test_the_librarys_errors_are_clean_answers_in_a_real_server(asgi):
    paths = ["/async/call-timeout/", "/async/open-breaker/", "/async/deadline/", "/sync/call-timeout/"]
    with LiveServer(overrides(), workers=2, asgi=asgi) as server:
        codes = {path: requests.get(server.url + path, timeout=10).status_code for path in paths}
        output = server.output()
    expected = {"/async/call-timeout/": 504, "/async/open-breaker/": 503, "/async/deadline/": 504, "/sync/call-timeout/": 504}
    assert codes == expected, output[-3000:]
    assert "Traceback" not in output and "Internal Server Error" not in output
    assert "Service Unavailable" not in output and "Gateway Timeout" not in output  # no django.request line per answer
