"""A real gunicorn (WSGI) or uvicorn (ASGI) server for tests about HTTP: several workers, the test
database, real Redis.

    with LiveServer({"RESILIENCE": {...}, "ROOT_URLCONF": "tests.urls_live"}, workers=4) as server:
        requests.get(server.url + "/slow/")

The server runs ``tests.settings_live`` with the overrides given, against the test database that
pytest-django created (so it needs the ``django_db_setup`` fixture) and stops when the block ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from django.db import connection

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def live_port() -> int:
    """A free port: any, or one from ``TEST_LIVE_PORTS`` ("20000-20999") where only some may be used."""
    span = os.environ.get("TEST_LIVE_PORTS")
    if not span:
        return free_port()
    low, high = (int(part) for part in span.split("-", 1))
    for port in range(low, high + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in TEST_LIVE_PORTS={span}")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on 127.0.0.1 (a real HTTP endpoint, every AWS service): its URL."""
    from moto.server import ThreadedMotoServer

    port = live_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class LiveServer:
    def __init__(
        self,
        overrides: dict[str, Any],
        *,
        workers: int = 2,
        threads: int = 1,
        timeout: int = 30,
        env: dict[str, str] | None = None,
        asgi: bool = False,
        args: list[str] | None = None,
    ) -> None:
        self.overrides, self.workers, self.threads, self.timeout = overrides, workers, threads, timeout
        self.asgi = asgi  # uvicorn (ASGI) instead of gunicorn (WSGI)
        self.extra_env = env or {}
        self.args = args or []  # more gunicorn arguments (e.g. ["-c", "gunicorn.conf.py"])
        self.port = live_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_live",
            "LIVE_OVERRIDES": json.dumps(self.overrides),
            "LIVE_DB_NAME": connection.settings_dict["NAME"],
            **self.extra_env,
        }
        if self.asgi:
            command = [
                sys.executable, "-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers), "--timeout-graceful-shutdown", "2", "--no-access-log", "--no-proxy-headers",
            ]  # fmt: skip
        else:
            worker_class = ["-k", "gthread", "--threads", str(self.threads)] if self.threads > 1 else []
            command = [
                sys.executable, "-m", "gunicorn", "project.wsgi:application", "-b", f"127.0.0.1:{self.port}",
                "-w", str(self.workers), *worker_class, "--timeout", str(self.timeout), "--graceful-timeout", "2", *self.args,
            ]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()[-3000:]}")
            try:
                requests.get(self.url + "/__ready__/", timeout=1)
                return self
            except requests.RequestException:  # not listening yet, or a worker still booting
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"gunicorn did not start: {self.output()[-3000:]}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
