"""A TCP proxy that stands for a region the demo can take down and bring back (``manage.py aws_demo``).

``RegionProxy(host, port)`` listens on 127.0.0.1:<free port> and forwards every connection to
``host:port`` while up; ``down()`` cuts the open connections and closes each new one at once (as a
region whose endpoint went away); ``up()`` forwards again. ``refused`` counts the connections turned
away while down, so the demo can show what reached the region and what never left the client.
"""

from __future__ import annotations

import select
import socket
import threading


class RegionProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.is_up = True
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="demo-region-proxy").start()

    def down(self) -> None:
        self.is_up = False
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def up(self) -> None:
        self.is_up = True

    def close(self) -> None:
        self._closed.set()
        _close(self._listener)
        self.down()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.is_up:
                with self._lock:
                    self.refused += 1
                _close(client)
                continue
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open |= {client, upstream}
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._open -= {client, upstream}
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # the peer sees the cut at once
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
