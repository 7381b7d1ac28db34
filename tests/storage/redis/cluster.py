"""A local Redis Cluster owned by the test suite: 3 primaries with a replica each, on free ports.

Each node is a ``RedisServer`` (``tests/conftest.py``) started with ``--cluster-enabled yes``; then
``redis-cli --cluster create`` assigns the slots and the replicas, and ``ready()`` waits until every
node reports ``cluster_state:ok``. ``--cluster-node-timeout`` is short (1 s), so a killed primary's
replica takes over within a few seconds. Never port 6379: every port is free-picked.
``TlsLocalRedisCluster`` is the same over TLS only (no plain port), with an AUTH token.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.cluster import ClusterNode, RedisCluster, key_slot

from tests.conftest import RedisServer
from tests.storage.redis.tls import Certificates, make_certificates

NODE_TIMEOUT_MS = 1000


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, both below 65536."""
    for _ in range(200):
        port = random.randint(20_000, 40_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNodeServer(RedisServer):
    """One cluster-enabled redis-server; its nodes file lives in the cluster's folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__(free_cluster_port())
        self.folder = folder

    def listening(self) -> list[str]:
        """Where it listens (a TLS node: on its TLS port only)."""
        return ["--port", str(self.port)]

    def arguments(self) -> list[str]:
        return [
            *self.listening(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.folder / f"nodes-{self.port}.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--dir", str(self.folder),
            "--logfile", str(self.folder / f"node-{self.port}.log"),
            "--repl-diskless-sync-delay", "0",  # replicas sync at once (a replica never synced cannot take over)
            "--cluster-replica-validity-factor", "0",  # a replica paused by a test may still take over
        ]  # fmt: skip


class LocalRedisCluster:
    """Six nodes (3 primaries + 1 replica each); ``url`` is the library's ``redis+cluster://`` form."""

    def __init__(self, folder: Path, primaries: int = 3, replicas: int = 1) -> None:
        self.folder = folder
        self.nodes = [self.make_node() for _ in range(primaries * (1 + replicas))]
        self.replicas = replicas

    def make_node(self) -> ClusterNodeServer:
        return ClusterNodeServer(self.folder)

    def cli_options(self) -> list[str]:
        """What ``redis-cli`` needs to reach the nodes (a TLS cluster: TLS and its CA)."""
        return []

    def cli_environment(self) -> dict[str, str] | None:
        """``redis-cli``'s environment (a cluster with a password: ``REDISCLI_AUTH``, never argv)."""
        return None

    @property
    def url(self) -> str:
        """Two seed nodes: the client discovers the rest (and survives one seed being down)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2]) + "/0"

    def start(self) -> LocalRedisCluster:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        create = ["--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes), "--cluster-replicas", str(self.replicas)]
        subprocess.run(
            [cli, *self.cli_options(), *create, "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, env=self.cli_environment(),
        )  # fmt: skip
        self.ready()
        return self

    def ready(self, timeout: float = 30.0) -> None:
        """Wait until every running node says ``cluster_state:ok``, every replica has synced and the
        client sees every slot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(self._node_ready(n) for n in self.running()):
                    self.client().close()  # raises while some slot has no primary
                    return
            except (redis.RedisError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")

    @staticmethod
    def _node_ready(node: ClusterNodeServer) -> bool:
        """The cluster is ok as this node sees it and, if it is a replica, it has synced with its primary."""
        client = node.client(socket_timeout=0.5)
        if client.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
            return False
        replication = client.info("replication")
        return replication["role"] == "master" or replication.get("master_link_status") == "up"

    def running(self) -> list[ClusterNodeServer]:
        return [n for n in self.nodes if n.proc is not None]

    def client(self, **options: Any) -> RedisCluster:
        """The test's own cluster client (redis-py's), seeded with every running node."""
        seeds = [ClusterNode("127.0.0.1", n.port) for n in self.running()]
        return RedisCluster(startup_nodes=seeds, socket_timeout=2, **self.client_options(), **options)

    def client_options(self) -> dict[str, Any]:
        """What a redis-py client needs to reach the nodes (a TLS cluster: TLS, its CA, the token)."""
        return {}

    def primary_of(self, key: str) -> ClusterNodeServer:
        """The node that serves ``key``'s slot now."""
        client = self.client()
        try:
            node = client.nodes_manager.get_node_from_slot(key_slot(key.encode()))
            return next(n for n in self.nodes if n.port == node.port)
        finally:
            client.close()

    def replica_of(self, primary: ClusterNodeServer) -> ClusterNodeServer:
        """The node that replicates ``primary``."""
        client = primary.client()
        me = client.execute_command("CLUSTER MYID")
        me = me.decode() if isinstance(me, bytes) else me
        nodes = client.execute_command("CLUSTER NODES")
        address = next(a for a, n in nodes.items() if n["master_id"] == me)
        return next(n for n in self.nodes if address.endswith(f":{n.port}"))

    def wait_for_failover(self, key: str, killed: ClusterNodeServer, timeout: float = 30.0) -> None:
        """Wait until a replica serves ``key``'s slot in place of the killed primary, and all is ok."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.primary_of(key).port != killed.port:
                    self.ready(max(deadline - time.monotonic(), 0.1))
                    return
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("no replica took over the killed primary's slots")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class TlsClusterNodeServer(ClusterNodeServer):
    """A cluster node that speaks only TLS: to clients (``--port 0``: no plain listener at all), to its
    replicas and on the cluster bus; every client logs in with the cluster's AUTH token (``requirepass``,
    ``masterauth`` for a replica's link). Server-side TLS, as ElastiCache's in-transit encryption."""

    def __init__(self, folder: Path, certificates: Certificates, token: str) -> None:
        super().__init__(folder)
        self.certificates, self.token = certificates, token

    def listening(self) -> list[str]:
        return ["--port", "0", "--tls-port", str(self.port)]  # the bus: the TLS port + 10000

    def arguments(self) -> list[str]:
        files = self.certificates
        return [
            *super().arguments(),
            "--tls-cluster", "yes", "--tls-replication", "yes",
            "--tls-cert-file", str(files.cert), "--tls-key-file", str(files.key), "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "no",
            "--requirepass", self.token, "--masterauth", self.token,
        ]  # fmt: skip

    def client(self, **options: Any) -> redis.Redis:
        """The test's own client of this node, over verified TLS, with the token."""
        return redis.Redis(host="127.0.0.1", port=self.port, **tls_options(self.certificates, self.token), **options)


def tls_options(certificates: Certificates, token: str) -> dict[str, Any]:
    return {"ssl": True, "ssl_ca_certs": str(certificates.ca), "password": token}


class TlsLocalRedisCluster(LocalRedisCluster):
    """Six TLS-only nodes with an AUTH token; ``url`` is the library's ``rediss+cluster://`` form. The
    certificate names 127.0.0.1 (hostname checking stays on); the token needs percent-encoding in a
    URL (``+``, ``,``, ``=``) and is distinctive, so that a test can grep any output for it."""

    def __init__(self, folder: Path, primaries: int = 3, replicas: int = 1) -> None:
        self.certificates = make_certificates(folder / "tls", ("127.0.0.1", "localhost"), client_auth=True)
        self.token = f"S3cr3t+cluster,token={secrets.token_hex(8)}"
        super().__init__(folder, primaries, replicas)

    def make_node(self) -> ClusterNodeServer:
        return TlsClusterNodeServer(self.folder, self.certificates, self.token)

    def cli_options(self) -> list[str]:
        return ["--tls", "--cacert", str(self.certificates.ca)]

    def cli_environment(self) -> dict[str, str]:
        return {**os.environ, "REDISCLI_AUTH": self.token}

    def client_options(self) -> dict[str, Any]:
        return tls_options(self.certificates, self.token)

    @property
    def url(self) -> str:
        """``rediss+cluster://:<token>@127.0.0.1:p1,127.0.0.1:p2/0?ssl_ca_certs=...``: two seeds."""
        return self.token_url()

    def token_url(self, token: str | None = None, query: str | None = None) -> str:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])
        query = self.certificates.ca_query if query is None else query
        return f"rediss+cluster://:{quote(token or self.token, safe='')}@{seeds}/0" + (f"?{query}" if query else "")

    @property
    def leak_markers(self) -> tuple[str, ...]:
        """Every form the token could leak in: as set, as written in a URL, and the full URL."""
        return (self.token, quote(self.token, safe=""), self.url)


class CommandLog:
    """Every command the cluster's primaries run while it is open (``MONITOR`` on each), as
    ``(node port, [command, arg, ...])``: what reached Redis, not what a client meant to send."""

    def __init__(self, cluster: LocalRedisCluster) -> None:
        self.cluster = cluster
        self.seen: list[tuple[int, list[str]]] = []
        self._marker = f"command-log-end-{uuid.uuid4().hex}"
        self._threads: list[threading.Thread] = []

    def primaries(self) -> list[ClusterNodeServer]:
        return [n for n in self.cluster.running() if n.client().execute_command("ROLE")[0] in (b"master", "master")]

    def __enter__(self) -> CommandLog:
        ready = threading.Barrier(len(self.primaries()) + 1)
        for node in self.primaries():
            thread = threading.Thread(target=self._follow, args=(node, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
        ready.wait(10)
        return self

    def _follow(self, node: ClusterNodeServer, ready: threading.Barrier) -> None:
        with node.client(socket_timeout=10).monitor() as monitor:
            ready.wait(10)
            while True:
                entry = monitor.next_command()
                if self._marker in entry["command"]:
                    return
                if entry.get("client_type") != "lua":  # a script's own calls are part of its one command
                    self.seen.append((node.port, entry["command"].split(" ")))

    def __exit__(self, *exc: object) -> None:
        for node in self.primaries():
            node.client().echo(self._marker)
        for thread in self._threads:
            thread.join(10)

    def scripts(self) -> list[tuple[int, str, list[str]]]:
        """Every EVALSHA/EVAL: (node port, sha or source, its KEYS)."""
        found = []
        for port, words in self.seen:
            if words and words[0].upper() in ("EVALSHA", "EVAL"):
                count = int(words[2])
                found.append((port, words[1], words[3 : 3 + count]))
        return found


def slot(key: str) -> int:
    return int(key_slot(key.encode()))
