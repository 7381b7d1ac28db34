"""The receiving ends of alert tests, all on 127.0.0.1: an SMTP server (aiosmtpd), a webhook
receiver that verifies the signature, and a webhook that accepts connections and never answers."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from resilience.observability.alerts.notifiers import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import free_port


class _Collect:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


class SMTPServer:
    """A real SMTP server; ``messages`` are the raw messages it received."""

    def __init__(self) -> None:
        self.handler = _Collect()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def messages(self) -> list[bytes]:
        with self.handler.lock:
            return list(self.handler.messages)

    def close(self) -> None:
        self.controller.stop()


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        timestamp, signature = self.headers.get(TIMESTAMP_HEADER, ""), self.headers.get(SIGNATURE_HEADER, "")
        valid = verify(server.key, body, timestamp, signature)
        with server.lock:
            server.received.append({"raw": bytes(self.requestline, "latin-1") + bytes(self.headers) + body, "valid": valid,
                                    "notice": json.loads(body)})  # fmt: skip
        self.send_response(204 if valid else 401)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class WebhookReceiver:
    """Answers 204 to a request whose signature verifies with ``key``, 401 otherwise; keeps every one."""

    def __init__(self, key: bytes) -> None:
        self.server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
        self.server.key, self.server.received, self.server.lock = key, [], threading.Lock()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/resilience"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def received(self) -> list[dict[str, Any]]:
        with self.server.lock:
            return list(self.server.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HungWebhook:
    """Accepts every connection and never answers (reads and holds it until ``close``)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks/hung"
        self.held: list[socket.socket] = []
        self.accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()
