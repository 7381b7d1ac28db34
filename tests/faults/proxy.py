"""A TCP proxy for fault injection: pass traffic, delay it, black-hole it, or cut connections.

Used by tests to make a real server (Redis, Postgres) slow or unreachable without touching it.
"""

from __future__ import annotations

import select
import socket
import threading
import time


class FaultProxy:
    """Listens on 127.0.0.1:<port> and forwards to ``upstream``; ``mode`` can change at any time."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"  # "pass" | "delay" | "blackhole" | "mute" | "refuse"
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    def url(self, scheme: str = "redis", path: str = "/0") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def slow(self, seconds: float) -> None:
        """Hold every chunk of data ``seconds`` before forwarding it."""
        self.delay, self.mode = seconds, "delay"

    def blackhole(self) -> None:
        """Accept connections and data, forward nothing, answer nothing."""
        self.mode = "blackhole"

    def mute(self) -> None:
        """Forward requests, drop every reply: the server acts, the client never hears back."""
        self.mode = "mute"

    def refuse(self) -> None:
        """Close every new connection at once, as a server that is down (or restarting) does."""
        self.mode = "refuse"

    def down(self) -> None:
        """The server goes away: open connections are cut and new ones refused until ``heal``."""
        self.refuse()
        self.cut()

    def heal(self) -> None:
        self.mode, self.delay = "pass", 0.0

    def cut(self) -> None:
        """Close every open connection (the next ones go through, per mode)."""
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close(conn, now=True)

    def close(self) -> None:
        self._closed.set()
        _close(self._listener)
        self.cut()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode == "refuse":
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._conns |= {client, upstream}
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.mode == "blackhole" or (self.mode == "mute" and sock is upstream):
                        continue
                    if self.mode == "delay":
                        time.sleep(self.delay)
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            _close(client)
            _close(upstream)


def _close(sock: socket.socket, now: bool = False) -> None:
    """Close ``sock``; ``now``: shut it down first, so the peer sees the cut at once (a plain close
    waits until the serving thread's select() lets go of the socket)."""
    if now:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    try:
        sock.close()
    except OSError:
        pass
