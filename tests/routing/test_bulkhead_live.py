"""A route's permit and deadline in a real gunicorn: they cover a streaming response until it is
closed, and a client that sends its body slowly holds a worker thread but never a permit."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.test import Client

from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]


def server(routes, **kwargs):
    overrides = {"ROOT_URLCONF": "tests.urls_live", "MIDDLEWARE": MIDDLEWARE, "RESILIENCE": {"HISTORY": False, "ROUTES": routes}}
    return LiveServer(overrides, workers=1, threads=16, **kwargs)


def test_streaming_responses_hold_the_permit_until_they_end():
    """Six 2-second streams on a route capped at 2 all ran at once: the permit ended with the view."""
    with server([{"path": "/stream/", "timeout": 10, "max_concurrency": 2, "retry_after": 3}]) as live:

        def fetch(_):
            response = requests.get(live.url + "/stream/?seconds=2", timeout=15)
            return response.status_code, response.text[-4:]

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(fetch, range(6)))
        assert sorted(results) == [(200, "done")] * 2 + [(503, 'y."}')] * 4  # "...Try again shortly."}
        assert requests.get(live.url + "/stream/?seconds=0", timeout=5).status_code == 200  # both permits came back


def test_a_stream_that_outlives_the_deadline_is_cut_and_its_permit_returns():
    with server([{"path": "/stream/", "timeout": 1, "max_concurrency": 1}]) as live:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # cut: the client can tell it is incomplete
            requests.get(live.url + "/stream/?seconds=5", timeout=15).content  # noqa: B018
        assert time.monotonic() - started < 3
        assert requests.get(live.url + "/stream/?seconds=0", timeout=5).text == "done"


def slow_body(url, stop):
    """A client that announces 20 bytes of body and sends one every half second."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n")
    while not stop.wait(0.5):
        try:
            sock.sendall(b"x")
        except OSError:
            break
    sock.close()


def test_clients_sending_their_body_slowly_hold_no_permit():
    """Two clients sending a byte a second made all 10 other requests get 503 for 10 s."""
    with server([{"path": "/upload/", "timeout": 1, "max_concurrency": 2}]) as live:
        stop = threading.Event()
        dribblers = [threading.Thread(target=slow_body, args=(live.url, stop)) for _ in range(2)]
        for t in dribblers:
            t.start()
        time.sleep(0.5)  # both are inside, reading their bodies
        try:
            codes = [requests.post(live.url + "/upload/", data=b"hello", timeout=5).status_code for _ in range(10)]
        finally:
            stop.set()
            for t in dribblers:
                t.join(15)
        assert codes == [200] * 10


def test_a_streamed_response_in_process_returns_its_permit_when_consumed_or_closed(settings):
    from resilience.middleware import route_table

    settings.ROOT_URLCONF = "tests.urls_live"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/stream/", "max_concurrency": 1}]}
    bulkhead = route_table().match("/stream/").bulkhead
    response = Client().get("/stream/?seconds=0")
    assert bulkhead.active == 1  # still streaming
    assert b"".join(response.streaming_content) == b"done"
    assert bulkhead.active == 0
    response = Client().get("/stream/?seconds=0")
    response.close()  # never iterated: closed by the server
    assert bulkhead.active == 0
