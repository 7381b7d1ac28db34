"""Shared fixtures: real Redis with a per-test key prefix, test-owned redis-server processes."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.conf import settings as django_settings
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from resilience.breakers.registry import breakers

CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server owned by one test, on its own port, that the test can kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arguments(self) -> list[str]:
        """Where it listens (a subclass adds TLS, passwords, cluster mode...)."""
        return ["--port", str(self.port)]

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py client that reaches this server (with its TLS and credentials, if any)."""
        return redis.Redis(port=self.port, **options)

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, *self.arguments(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client(socket_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.kill()


@pytest.fixture
def key_prefix() -> Iterator[str]:
    prefix = f"rtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    breakers.reload()  # stop the sync thread first: it would publish window counts after the clean-up
    client = redis.Redis.from_url(django_settings.TEST_REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def test_redis() -> redis.Redis:
    return redis.Redis.from_url(django_settings.TEST_REDIS_URL)


def needs_django_pool() -> None:
    """Django's psycopg pool (``OPTIONS["pool"]``) arrived in Django 5.1: on 4.2 it does not exist
    (CI runs the suite on both); this skips the pooled variant there, never for a missing service."""
    import django

    if django.VERSION < (5, 1):
        pytest.skip("Django's psycopg connection pool needs Django 5.1+")


def resilience_settings(**values: Any) -> dict[str, Any]:
    return {"HISTORY": False, **values}


@pytest.fixture
def shared_breakers(settings: Any, key_prefix: str) -> Iterator[Any]:
    """Breakers whose state lives in the real Redis (own db index, own prefix)."""
    settings.RESILIENCE = resilience_settings(REDIS=django_settings.TEST_REDIS_URL, KEY_PREFIX=key_prefix, SYNC_INTERVAL=0.1)
    yield breakers
    breakers.reload()


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    breakers.reload()
    yield
    breakers.reload()


@pytest.fixture(autouse=True)
def _fresh_log_summaries() -> Iterator[None]:
    """Each test starts with no folded log lines (a line's first occurrence is logged at once)."""
    from resilience.observability import events

    events.summary = events.LogSummary()
    yield
    events.summary = events.LogSummary()


@pytest.fixture
def events() -> Iterator[list[Any]]:
    """Every event emitted during the test, in order (``resilience.signals.event_emitted``)."""
    from resilience.signals import event_emitted

    seen: list[Any] = []

    def receive(sender: Any, event: Any, **kwargs: Any) -> None:
        seen.append(event)

    event_emitted.connect(receive, weak=False)
    yield seen
    event_emitted.disconnect(receive)


# -- browser: headless Chromium (Debian chromium + chromium-driver) -----------------------------
@pytest.fixture(scope="module")
def _chromium() -> Iterator[WebDriver]:
    """One headless Chromium per module, with its own throw-away profile; always quit."""
    with tempfile.TemporaryDirectory(prefix="circuits-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in CHROME_ARGS:
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def browser(_chromium: WebDriver) -> Iterator[WebDriver]:
    """The shared browser, logged out: no cookie of a previous test survives into this one."""
    _chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield _chromium
    _chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})


# -- a test-owned TLS redis-server with an AUTH token and an ACL user -------------------------------
class TlsRedisServer(RedisServer):
    """A redis-server that speaks only TLS (``--port 0``: no plain listener) on its own port, with an
    AUTH token for the default user and an ACL user ``app``; certificates made for it in ``folder``
    (``tests/storage/redis/tls.py``: a CA, and a server certificate for ``hosts``). The secrets are
    distinctive, so that a test can grep any output for them."""

    USER = "app"

    def __init__(self, folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        from tests.storage.redis.tls import make_certificates

        super().__init__()
        self.certificates = make_certificates(folder, hosts)
        self.hosts = hosts
        self.token = f"S3cr3t-token-{secrets.token_hex(8)}"
        self.user_password = f"S3cr3t/user@{secrets.token_hex(8)}"  # needs percent-encoding in a URL

    def arguments(self) -> list[str]:
        files = self.certificates
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(files.cert), "--tls-key-file", str(files.key), "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "no",  # server-side TLS, as ElastiCache's in-transit encryption
            "--requirepass", self.token,
            "--user", self.USER, "on", f">{self.user_password}", "~*", "&*", "+@all",
        ]  # fmt: skip

    def client(self, **options: Any) -> redis.Redis:
        """The test's own client (as the default user): it checks the hostname when the certificate names 127.0.0.1."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.certificates.ca),
            ssl_check_hostname="127.0.0.1" in self.hosts, password=self.token, **options,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The AUTH-token form: ``rediss://:<token>@host:port/0?ssl_ca_certs=...``."""
        return self.token_url()

    def token_url(self, token: str | None = None, host: str = "127.0.0.1") -> str:
        return f"rediss://:{quote(token or self.token, safe='')}@{host}:{self.port}/0?{self.certificates.ca_query}"

    def user_url(self, password: str | None = None, host: str = "127.0.0.1") -> str:
        """The ACL-user form: ``rediss://app:<password>@host:port/0?ssl_ca_certs=...``."""
        secret = quote(password or self.user_password, safe="")
        return f"rediss://{self.USER}:{secret}@{host}:{self.port}/0?{self.certificates.ca_query}"

    @property
    def leak_markers(self) -> tuple[str, ...]:
        """Every form a secret could leak in: as set, and as written in a URL; and the full URLs."""
        return (
            self.token,
            self.user_password,
            quote(self.user_password, safe=""),
            self.token_url(),
            self.user_url(),
        )


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedisServer]:
    """One TLS + AUTH redis-server for the session (tests keep apart by key prefix); stopped at the end."""
    server = TlsRedisServer(tmp_path_factory.mktemp("tls-redis"))
    try:  # killed even if it never answers
        server.start()
        yield server
    finally:
        server.kill()


# -- a test-owned Redis Cluster: 3 primaries with a replica each (tests/storage/redis/cluster.py) ---
@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Redis Cluster for the session (tests keep apart by key prefix); every node is
    killed at the end. A test that kills a node must use ``fresh_redis_cluster`` instead."""
    from tests.storage.redis.cluster import LocalRedisCluster

    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[Any]:
    """A Redis Cluster of the test's own, for tests that kill nodes; killed at the end."""
    from tests.storage.redis.cluster import LocalRedisCluster

    cluster = LocalRedisCluster(tmp_path)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto in server mode for the module's tests (AWS integration, CloudWatch sinks, alarms)."""
    from tests.live import moto_server

    with moto_server() as url:
        yield url


# -- a test-owned Redis Cluster over TLS only, with an AUTH token (tests/storage/redis/cluster.py) ---
@pytest.fixture(scope="module")
def tls_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Six nodes that speak only TLS (no plain port) and want an AUTH token, for the module's tests
    (they keep apart by key prefix); every node is killed when the module is done."""
    from tests.storage.redis.cluster import TlsLocalRedisCluster

    cluster = TlsLocalRedisCluster(tmp_path_factory.mktemp("tls-redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()
