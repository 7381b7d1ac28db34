"""An HTTP recorder in front of moto: forwards every request and keeps what CloudWatch was sent.

Each recorded call keeps its ``X-Amz-Target`` operation, the body's size on the wire and
uncompressed, its ``Content-Encoding``, and the decoded JSON (``PutMetricData``'s parameters).
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    operation: str
    encoding: str | None
    sent_bytes: int
    body_bytes: int
    params: dict[str, Any]


class CloudWatchRecorder:
    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.calls: list[Call] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding")
                body = gzip.decompress(raw) if encoding == "gzip" else raw
                target = self.headers.get("X-Amz-Target", "")
                params = json.loads(body) if body and "json" in self.headers.get("Content-Type", "") else {}
                recorder.calls.append(Call(target.rsplit(".", 1)[-1], encoding, len(raw), len(body), params))
                upstream = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request("POST", self.path, body=raw, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True, name="cloudwatch-recorder").start()

    def puts(self) -> list[Call]:
        return [call for call in self.calls if call.operation == "PutMetricData"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
