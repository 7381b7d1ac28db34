"""A tiny HTTP server on 127.0.0.1 for adapter tests: each path answers with the status it names."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        server: Any = self.server
        server.seen.append((self.command, self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        status = int(parts[0]) if parts and parts[0].isdigit() else 200
        if parts and parts[0].startswith("flaky"):  # /flaky3/key: 503 for the first 3 requests of key
            with server.lock:
                server.counts[self.path] = server.counts.get(self.path, 0) + 1
                status = 503 if server.counts[self.path] <= int(parts[0][5:] or 1) else 200
        if len(parts) > 1 and parts[1].startswith("sleep"):
            time.sleep(float(parts[1][5:]))
        body = b'{"ok": true}'
        try:
            self._send(status, parts, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (timeouts in tests)

    def _send(self, status: int, parts: list[str], body: bytes) -> None:
        self.send_response(status)
        if status in (429, 503) and len(parts) > 1 and parts[1].startswith("after"):
            self.send_header("Retry-After", parts[1][5:])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class LocalHTTPServer:
    """``GET /503`` answers 503; ``/200/sleep0.5`` answers 200 after 0.5 s; ``/429/after2`` sets Retry-After: 2;
    ``/flaky2/x`` answers 503 twice, then 200."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.seen = []  # type: ignore[attr-defined]
        self.httpd.counts = {}  # type: ignore[attr-defined]
        self.httpd.lock = threading.Lock()  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.httpd.seen  # type: ignore[attr-defined,no-any-return]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
