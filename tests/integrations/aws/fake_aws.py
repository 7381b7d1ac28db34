"""A scripted AWS endpoint on 127.0.0.1 for what moto cannot produce: 5xx, throttling, ``x-amz-retry-after``.

Each request takes the next answer of the script (the last one repeats) and is counted, so tests
can say exactly how many requests a call made. Answers are S3-style XML errors (or ``200`` with an
empty ``ListAllMyBucketsResult``), which botocore parses as it parses S3's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OK_BODY = b'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>'


@dataclass(frozen=True)
class Answer:
    status: int
    code: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the client waits: an endpoint that hangs)

    def body(self) -> bytes:
        if self.status < 300:
            return OK_BODY
        return f"<Error><Code>{self.code}</Code><Message>scripted</Message></Error>".encode()


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with server.lock:
            server.requests += 1
            answer = server.script[min(server.requests - 1, len(server.script) - 1)]
        time.sleep(answer.delay)
        body = answer.body()
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class ScriptedAWS:
    """``ScriptedAWS(Answer(503, "ServiceUnavailable"))``; ``.play(...)`` starts a new script and count."""

    def __init__(self, *script: Answer) -> None:
        self.httpd: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.lock = threading.Lock()
        self.play(*(script or (Answer(200),)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def play(self, *script: Answer) -> None:
        with self.httpd.lock:
            self.httpd.script, self.httpd.requests = list(script), 0

    @property
    def requests(self) -> int:
        return int(self.httpd.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
