"""AWS calls (issue 13): what protection costs per boto3 call, against moto over real HTTP on
127.0.0.1, next to bare clients timed in the same run; and how many HTTP requests one call makes.

    python benchmarks/aws.py [--quick] [--redis redis://127.0.0.1:6379/14] [--profile]

moto runs in server mode in a child process (``python -m moto.server`` on 127.0.0.1 and a free
port), so this process pays only the client's side of each call, as it would against AWS; moto's
own work is in every call's time alike. Three cheap operations: S3 ``GetObject`` of a 16-byte
object (body read), DynamoDB ``GetItem`` and SQS ``GetQueueUrl``. For each, six clients, each with
its own keep-alive connection:

- bare, botocore's defaults (legacy retry mode, up to 5 attempts);
- bare, ``botocore_config()`` (botocore's retries off, what protection sets): **the baseline**;
- a second bare client like the baseline: how far two identical clients differ (the noise);
- protected: a client of ``resilience.integrations.aws.session()``: the breaker
  ``aws:<service>:us-east-1`` (in-process state), the ``aws`` retry layer, the deadline handler;
- the same inside ``with resilience.deadline(5.0):``, entered and left around every call;
- protected, breaker state shared through Redis (``RESILIENCE["REDIS"]``).

The in-process and Redis rows need different ``RESILIENCE`` settings: before a block of either, the
script sets them and reloads (as ``override_settings`` would), untimed, then makes a few warm-up
calls. Every round calls each client in turn, the order rotating, and times each call alone (on a
shared machine the median of many calls side by side beats the mean of a batch); the overhead is
the median over rounds of (the row − the baseline in the same round), over the baseline's median.
Target: ≤ 5 %. The Redis row is timed in its own block of each round, beside its own baseline, and
the packets the calls send to Redis are counted (none expected while breakers are closed).

Part 2 takes the network away: a ``before-send`` handler (botocore's own hook for it) answers every
attempt with the response moto gave, so only botocore's client side and the handlers remain. The
protected client sends the same request as the baseline, so its overhead is its extra client time
there, over the baseline's call over HTTP: the targets are checked on that, steadier on a shared
machine than the difference of two calls over HTTP (shown as well, with its noise). Part 3
times each handler where botocore calls it (wrapped, inside real calls without network). Part 4
counts HTTP requests per call with default settings, at a TCP proxy in front of moto that parses
request lines (and skips bodies by ``Content-Length``), for botocore's default client and a
protected one. ``--profile`` adds a cProfile of a bare and a protected client without network.

Credentials are "test"/"test"; AWS environment variables and config files are ignored (and the
instance metadata service is off) in this process and moto's, so nothing leaves 127.0.0.1. Redis
keys are under a unique ``KEY_PREFIX`` and deleted at the end. The machine may be shared and
noisy: compare the ratios measured in one run, not absolute times across runs.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make ``resilience`` and ``benchmarks`` importable

for _name in [name for name in os.environ if name.startswith(("AWS_", "BOTO_"))]:
    del os.environ[_name]  # no profile, endpoint, retry mode or credentials from the environment
os.environ.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"})

import boto3  # noqa: E402
import redis  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402

from benchmarks import harness  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
BUCKET, KEY, BODY = "bench-aws", "tiny.txt", b"sixteen bytes!!\n"
TABLE, ITEM = "bench-aws", {"id": {"S": "bench"}, "value": {"S": "tiny"}}
QUEUE = "bench-aws"
TARGET = 0.05  # protected ≤ 5 % more than the bare client with retries off
WARM = 5  # untimed calls after the RESILIENCE settings changed
SLOW = 10  # first calibration batch of a variant making an HTTP request per call


# -- the operations --------------------------------------------------------------------------------
def s3_get(client: Any) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()


def dynamodb_get(client: Any) -> str:
    return client.get_item(TableName=TABLE, Key={"id": ITEM["id"]})["Item"]["value"]["S"]


def sqs_url(client: Any) -> str:
    return client.get_queue_url(QueueName=QUEUE)["QueueUrl"].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Operation:
    title: str
    service: str
    call: Callable[[Any], Any]
    expect: Any


OPERATIONS = [
    Operation("S3 GetObject (16 B, read)", "s3", s3_get, BODY),
    Operation("DynamoDB GetItem", "dynamodb", dynamodb_get, "tiny"),
    Operation("SQS GetQueueUrl", "sqs", sqs_url, QUEUE),
]


def create_resources(url: str) -> None:
    """The bucket and object, the table and item, the queue (through a bare client, straight to moto)."""
    made = boto3.session.Session(**CREDENTIALS)
    s3 = made.client("s3", endpoint_url=url, region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
    dynamodb = made.client("dynamodb", endpoint_url=url, region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    dynamodb.put_item(TableName=TABLE, Item=ITEM)
    made.client("sqs", endpoint_url=url, region_name=REGION).create_queue(QueueName=QUEUE)


# -- moto in a child process, and a proxy that counts requests -------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 and a free port, in its own process group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="bench-aws-moto-", suffix=".log", delete=False)  # noqa: SIM115
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited ({self.proc.returncode}): {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto did not answer within {timeout:.0f} s: {self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        harness.stop_server(self.proc, self.log, 5.0)


class RequestParser:
    """Follows one connection's client-to-server bytes: a request line and headers, then a body of
    ``Content-Length`` bytes, then the next request (keep-alive). Chunked bodies are not followed."""

    def __init__(self, on_request: Callable[[bytes], None]) -> None:
        self.on_request = on_request
        self.buffer = b""
        self.body_left = 0
        self.lost = False  # a chunked body: later requests on this connection cannot be told apart

    def feed(self, data: bytes) -> None:
        if self.lost:
            return
        self.buffer += data
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                self.buffer, self.body_left = self.buffer[taken:], self.body_left - taken
                if self.body_left:
                    return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            first, *lines = head.split(b"\r\n")
            self.on_request(first)
            headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                self.lost = True
                return
            self.body_left = int(headers.get(b"content-length", b"0") or 0)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_port`` that counts the HTTP requests sent through it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.methods: Counter[str] = Counter()
        self.lost = 0  # connections whose requests could not be followed (chunked bodies)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name="bench-aws-proxy").start()

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.methods.values())

    def _counted(self, request_line: bytes) -> None:
        with self._lock:
            self.methods[request_line.split(b" ", 1)[0].decode(errors="replace")] += 1

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        parser = RequestParser(self._counted)
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                for sock in wait_readable(list(peers)):
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        parser.feed(data)  # counted before it is forwarded: before any answer comes back
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            if parser.lost:
                with self._lock:
                    self.lost += 1
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def wait_readable(socks: list[socket.socket]) -> list[socket.socket]:
    import select

    return select.select(socks, [], [], 0.1)[0]


# -- Django and the two RESILIENCE configurations --------------------------------------------------
def setup_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="benchmark-only-not-secret",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "resilience"],
        DATABASES={},
        RESILIENCE={"HISTORY": False},
        LOGGING_CONFIG=None,
    )
    django.setup()


class Modes:
    """Switches ``settings.RESILIENCE`` between in-process state and state shared through Redis."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.values: dict[str, dict[str, Any]] = {"memory": {"HISTORY": False}}
        if redis_url is not None:
            self.values["redis"] = {"HISTORY": False, "REDIS": redis_url, "KEY_PREFIX": prefix}
        self.current = "memory"
        self.stores: set[str] = set()  # breaker store classes seen in the Redis mode
        self.unhealthy = 0  # Redis batches after which the store had fallen back to local state
        self.sends = self.calls = 0  # Redis packets sent by the timed calls' thread, and those calls

    def use(self, mode: str) -> bool:
        """Switch to ``mode``; whether anything changed (the next calls rebuild breakers and policies)."""
        if mode == self.current:
            return False
        from django.conf import settings

        from resilience.conf import resilience_settings

        settings.RESILIENCE = self.values[mode]
        resilience_settings.reload()  # what the setting_changed receiver does: breakers, stores, policies
        self.current = mode
        return True

    def check(self) -> None:
        """After a Redis batch: which store served it, and whether it stayed healthy."""
        from resilience.breakers.registry import breakers

        store = breakers.store
        self.stores.add(type(store).__name__)
        if not getattr(store, "healthy", True):
            self.unhealthy += 1


# -- the clients timed ------------------------------------------------------------------------------
BARE_DEFAULT = "bare, botocore defaults"
BARE = "bare, botocore_config() (baseline)"
BARE_AGAIN = "bare, botocore_config(), a second client"  # how far two identical clients differ: the noise
PROTECTED = "protected"
DEADLINE = "protected, in deadline(5.0)"
SHARED = "protected, breakers in Redis"


@dataclass
class Call:
    """One client making one operation: ``one()`` makes a call and returns what must equal ``expect``."""

    name: str
    operation: str
    one: Callable[[], Any]
    expect: Any
    samples: list[float] = field(default_factory=list)  # per round: the median ns of its calls
    calls: int = 0  # calls per round

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Block:
    """Calls timed one by one in turn, under one ``RESILIENCE`` configuration (``mode``)."""

    mode: str
    calls: list[Call]


def in_deadline(call: Callable[[Any], Any], client: Any) -> Callable[[], Any]:
    """``call(client)`` inside its own ``deadline(5.0)``, entered and left around the call."""
    from resilience import deadline

    def one() -> Any:
        with deadline(5.0):
            return call(client)

    return one


class Clients:
    """Makes the clients of every row, all pointed at ``url``, each with its own connection pool."""

    def __init__(self, url: str) -> None:
        from resilience.integrations.aws import botocore_config, session
        from resilience.integrations.aws.config import CONNECT_TIMEOUT

        self.url = url
        self.plain = boto3.session.Session(**CREDENTIALS)
        self.protected = session(**CREDENTIALS)
        self.retries_off = botocore_config(Config(connect_timeout=CONNECT_TIMEOUT))  # what protect() gives a session

    def make(self, kind: str, service: str) -> Any:
        if kind == BARE_DEFAULT:
            return self.plain.client(service, endpoint_url=self.url, region_name=REGION)
        if kind in (BARE, BARE_AGAIN):
            return self.plain.client(service, endpoint_url=self.url, region_name=REGION, config=self.retries_off)
        return self.protected.client(service, endpoint_url=self.url, region_name=REGION)

    def calls(self, kinds: tuple[str, ...], prepare: Callable[[Any, Operation], None] | None = None) -> list[Call]:
        found = []
        for op in OPERATIONS:
            for kind in kinds:
                client = self.make(kind, op.service)
                if prepare is not None:
                    prepare(client, op)
                one = in_deadline(op.call, client) if kind == DEADLINE else functools.partial(op.call, client)
                found.append(Call(kind, op.title, one, op.expect))
        return found


# -- no network: the response moto gave, answered at before-send --------------------------------
class CannedRaw:
    """What botocore reads a response body from (``stream()`` for whole bodies, ``read()`` for streaming ones)."""

    def __init__(self, body: bytes) -> None:
        self._io = io.BytesIO(body)

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self._io.read(amt):
            yield chunk

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        return self._io.read(amt)

    def close(self) -> None:
        pass


Canned = tuple[int, list[tuple[str, str]], bytes]


def capture(client: Any, op: Operation) -> Canned:
    """Status, headers and body of one real answer to ``op`` from ``client``."""
    found: dict[str, Any] = {}

    def grab(http_response: Any, model: Any, **kwargs: Any) -> None:
        found["status"], found["headers"] = http_response.status_code, list(http_response.headers.items())
        found["body"] = BODY if model.has_streaming_output else http_response.content

    client.meta.events.register("after-call", grab, unique_id="bench-aws-capture")
    try:
        op.call(client)
    finally:
        client.meta.events.unregister("after-call", unique_id="bench-aws-capture")
    return found["status"], found["headers"], found["body"]


def answer_locally(client: Any, canned: Canned) -> None:
    """Every attempt of ``client`` gets ``canned`` from a ``before-send`` handler: nothing is sent."""
    status, headers, body = canned

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        return AWSResponse(request.url, status, headers, CannedRaw(body))

    client.meta.events.register("before-send", answer, unique_id="bench-aws-answer")


def local_calls(clients: Clients, kinds: tuple[str, ...]) -> list[Call]:
    answers = {op.title: capture(clients.make(BARE, op.service), op) for op in OPERATIONS}
    return clients.calls(kinds, lambda client, op: answer_locally(client, answers[op.title]))


KINDS = (BARE_DEFAULT, BARE, BARE_AGAIN, PROTECTED, DEADLINE)


# -- measuring -------------------------------------------------------------------------------------
def run_block(block: Block, cycles: int, shift: int, modes: Modes) -> None:
    """One round of ``block``: ``cycles`` times, each call once, in an order rotating every cycle;
    each call timed alone (GC paused). A call's sample for the round is the median of its times."""
    calls = block.calls
    changed = modes.use(block.mode)
    for _ in range(WARM if changed else 1):  # untimed: after a settings change, the rebuilt breakers and policies
        for call in calls:
            call.one()
    times: list[list[int]] = [[] for _ in calls]
    order = list(range(len(calls)))
    clock = time.perf_counter_ns
    redis_block = block.mode == "redis"
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with harness.SendCounter() if redis_block else contextlib.nullcontext() as sent:
            for k in range(cycles):
                turn = (shift + k) % len(order)
                for i in order[turn:] + order[:turn]:
                    call = calls[i]
                    start = clock()
                    result = call.one()
                    times[i].append(clock() - start)
                    if result != call.expect:
                        raise RuntimeError(f"{call.operation}, {call.name}: got {result!r}, not {call.expect!r}")
    finally:
        if gc_was_enabled:
            gc.enable()
    for call, taken in zip(calls, times, strict=True):
        call.samples.append(statistics.median(taken))
        call.calls = cycles
    if redis_block:
        modes.sends += sent.caller
        modes.calls += cycles * sum(call.name == SHARED for call in calls)
    if redis_block:
        modes.check()


def measure(blocks: list[Block], rounds: int, cycles: int, modes: Modes) -> None:
    """``rounds`` rounds of every block, the blocks' order rotating too."""
    for r in range(rounds):
        turn = r % len(blocks)
        for block in blocks[turn:] + blocks[:turn]:
            run_block(block, cycles, r, modes)


def paired(call: Call, base: Call) -> float:
    """Median over rounds of ``call`` − ``base`` in the same round (ns): drift of a shared machine cancels."""
    return statistics.median(a - b for a, b in zip(call.samples, base.samples, strict=True))


Extras = dict[tuple[str, str], tuple[float, float]]


def overhead_rows(blocks: list[Block], baseline_note: dict[str, str]) -> tuple[list[list[str]], Extras]:
    """Table rows, operation by operation (each block's calls against that block's baseline), and
    for each (operation, client): (its paired extra over its baseline, the baseline's median), ns."""
    rows, overheads = [], {}
    for op in OPERATIONS:
        first = True
        for block in blocks:
            mine = [c for c in block.calls if c.operation == op.title]
            base = next(c for c in mine if c.name == BARE)
            for call in mine:
                if call is base and block is not blocks[0]:
                    name = f"{BARE.split(' (')[0]} ({baseline_note[block.mode]})"
                else:
                    name = call.name
                extra = paired(call, base)
                if call is not base:
                    overheads[(op.title, call.name)] = (extra, base.median)
                rows.append([
                    op.title if first else "", name, f"{call.median / 1e3:,.1f}",
                    f"{min(call.samples) / 1e3:,.1f}–{max(call.samples) / 1e3:,.1f}",
                    "–" if call is base else f"{extra / 1e3:+,.1f}", "–" if call is base else f"{extra / base.median:+.1%}",
                ])  # fmt: skip
                first = False
    return rows, overheads


HEADERS = ["operation", "client", "µs/call", "min–max over rounds", "vs baseline (µs)", "overhead"]


def count_requests(url: str, calls: int) -> list[list[str]]:
    """HTTP requests per call through a counting proxy: botocore's default client and a protected
    client with default settings (``session()`` without a config), ``calls`` calls each."""
    from resilience.integrations.aws import session

    proxy = CountingProxy(int(url.rsplit(":", 1)[1]))
    rows = []
    try:
        plain, protected = boto3.session.Session(**CREDENTIALS), session(**CREDENTIALS)
        for op in OPERATIONS:
            row = [op.title]
            for made in (plain, protected):
                client = made.client(op.service, endpoint_url=proxy.url, region_name=REGION)
                op.call(client)  # the connection, the first-call paths
                before = proxy.requests
                for _ in range(calls):
                    if op.call(client) != op.expect:
                        raise RuntimeError(f"{op.title}: a wrong answer through the proxy")
                row.append(f"{(proxy.requests - before) / calls:.2f}")
                client.close()
            rows.append(row)
        if proxy.lost:
            raise RuntimeError(f"{proxy.lost} connection(s) sent chunked bodies: requests could not be counted")
    finally:
        proxy.close()
    return rows


def profile(clients: Clients, calls: int) -> None:
    """cProfile of ``calls`` DynamoDB GetItem calls without network, bare and protected: the top
    functions by own time, and for the protected client every function of ``resilience`` by
    cumulative time (cProfile makes every Python call slower: compare within one listing)."""
    import cProfile
    import pstats

    op = OPERATIONS[1]
    canned = capture(clients.make(BARE, op.service), op)
    for kind in (BARE, PROTECTED):
        client = clients.make(kind, op.service)
        answer_locally(client, canned)
        harness.loop(op.call, client)(50)
        profiler = cProfile.Profile()
        profiler.enable()
        harness.loop(op.call, client)(calls)
        profiler.disable()
        print(f"\n## cProfile: {calls:,} × {op.title}, {kind}, no network\n")
        print("```")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(15)
        if kind == PROTECTED:
            stats.sort_stats("cumulative").print_stats(str(ROOT / "resilience"))
        print("```")


def handler_steps(clients: Clients, calls: int) -> tuple[list[list[str]], float]:
    """The protection handlers' own time inside real calls (DynamoDB GetItem, answered without
    network): a bare client with the same handlers registered through timing wrappers, calls
    alternating without and inside ``deadline(5.0)``. Median µs per event, the clock's cost taken
    off (the wrapper's call remains, a fraction of a µs); and the no-deadline total."""
    from resilience import deadline
    from resilience.integrations.aws.protection import protection

    op = OPERATIONS[1]
    client = clients.make(BARE, op.service)
    answer_locally(client, capture(clients.make(BARE, op.service), op))
    clock = time.perf_counter_ns
    events = [event for event, _ in protection.handlers()]
    times: dict[bool, dict[str, list[int]]] = {within: {event: [] for event in events} for within in (False, True)}
    current = [times[False]]

    def timed(event: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        def run(**kwargs: Any) -> Any:
            start = clock()
            try:
                return handler(**kwargs)
            finally:
                current[0][event].append(clock() - start)

        return run

    for event, handler in protection.handlers():
        client.meta.events.register(event, timed(event, handler), unique_id=f"bench-aws-timed-{event}")
    for within in (False, True):  # warm up, then forget
        current[0] = times[within]
        for _ in range(50):
            with deadline(5.0) if within else contextlib.nullcontext():
                op.call(client)
        for bucket in times[within].values():
            bucket.clear()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(calls):
            within = bool(i % 2)
            current[0] = times[within]
            with deadline(5.0) if within else contextlib.nullcontext():
                op.call(client)
    finally:
        if gc_was_enabled:
            gc.enable()
    empty = statistics.median(-(clock() - clock()) for _ in range(10_000))  # one clock read, roughly
    rows, totals = [], [0.0, 0.0]
    for event in events:
        if not times[False][event]:
            continue  # after-call-error: nothing fails here
        medians = [max(statistics.median(times[within][event]) - empty, 0.0) / 1e3 for within in (False, True)]
        totals = [t + m for t, m in zip(totals, medians, strict=True)]
        rows.append([event, *(f"{m:.1f}" for m in medians)])
    rows.append(["all together", *(f"{t:.1f}" for t in totals)])
    return rows, totals[0]


def breakers_closed() -> list[str]:
    """The names of the service breakers not closed at the end (in-process state)."""
    from resilience.breakers.registry import breakers

    names = [f"aws:{op.service}:{REGION}" for op in OPERATIONS]
    return [name for name in names if breakers.get_or_create(name).state != "closed"]


def main(argv: list[str] | None = None) -> int:
    args = harness.redis_arguments(
        __doc__.splitlines()[0], argv, flags={"--no-redis": "leave the Redis row out", "--profile": "print a cProfile"}
    )
    rounds, cycles = (2, 4) if args.quick else (15, 30)
    local_rounds, local_cycles = (2, 10) if args.quick else (11, 60)
    counted_calls = 20 if args.quick else 200
    started = time.perf_counter()
    info = None
    if not args.no_redis:
        info = redis.Redis.from_url(args.redis, socket_timeout=2)
        if not harness.reachable(info, args.redis):
            print("(the Redis row is left out)", file=sys.stderr)
            info.close()
            info = None
    prefix = f"bench-aws-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    setup_django()
    modes = Modes(args.redis if info is not None else None, prefix)
    moto = MotoServer()
    try:
        moto.wait_ready()
        create_resources(moto.url)
        clients = Clients(moto.url)

        blocks = [Block("memory", clients.calls(KINDS))]
        if info is not None:
            blocks.append(Block("redis", clients.calls((BARE, SHARED))))
        measure(blocks, rounds, cycles, modes)
        modes.use("memory")
        rows, overheads = overhead_rows(blocks, {"redis": "timed beside the Redis row"})
        per_round = sum(len(b.calls) for b in blocks) * cycles
        if args.quick:
            print("(--quick: a smoke test; far too few calls for the percentages below to mean anything)\n")
        print(f"## Per call against moto over HTTP on 127.0.0.1 ({rounds} rounds × {per_round} calls, medians)\n")
        print(harness.table(HEADERS, rows, "llrrrr"))
        print(
            "\nEach round calls every client in turn (the order rotating), timing each call alone; a row's value for"
            "\nthe round is the median of its calls, and the table shows the median over rounds. vs baseline: the"
            "\nmedian over rounds of (this row − the bare client with botocore's retries off in the same round);"
            "\noverhead: that over the baseline's median. The Redis row needs other RESILIENCE settings, so it is"
            "\ntimed in its own block of each round, beside its own baseline (switching settings is not timed)."
        )

        local = [Block("memory", local_calls(clients, KINDS))]
        if info is not None:
            local.append(Block("redis", local_calls(clients, (BARE, SHARED))))
        measure(local, local_rounds, local_cycles, modes)
        modes.use("memory")
        local_rows, local_extras = overhead_rows(local, {"redis": "timed beside the Redis row"})
        per_round = sum(len(b.calls) for b in local) * local_cycles
        print(f"\n## The same clients without network ({local_rounds} rounds × {per_round} calls, medians)\n")
        print(harness.table(HEADERS, local_rows, "llrrrr"))
        print(
            "\nA before-send handler answers every attempt with moto's own response: what is left is botocore's"
            "\nclient side (serialize, sign, parse) and, in the protected rows, the handlers, whose cost per call"
            "\nis the vs-baseline column."
        )

        steps, direct_us = handler_steps(clients, 500 if args.quick else 6_000)
        print(f"\n## The handlers' own time inside a call ({OPERATIONS[1].title}, no network, median µs)\n")
        print(harness.table(["event", "no deadline", "in deadline(5.0)"], steps, "lrr"))
        print(
            "\nEach handler timed where botocore calls it, in calls alternating without and inside the deadline."
            "\nThe protected rows above also pay botocore's dispatch to them; two identical bare clients differ"
            "\nby the second bare client's vs-baseline column."
        )

        counts = count_requests(moto.url, counted_calls)
        print(f"\n## HTTP requests per call, default settings, nothing failing ({counted_calls:,} calls each)\n")
        print(harness.table(["operation", "botocore's default client", "protected client (session())"], counts, "lrr"))
        default_rate = statistics.mean(float(r[1]) for r in counts)
        protected_rate = statistics.mean(float(r[2]) for r in counts)
        print(f"\nHTTP requests per call: {protected_rate:.2f} (protected client)")
        print(f"HTTP requests per call: {default_rate:.2f} (botocore's default client)")
        print("Counted at a TCP proxy in front of moto that reads the request line of every request on every connection.")

        if args.profile:
            profile(clients, 500 if args.quick else 5_000)

        print("\n## Targets\n")
        print(
            "Protection sends the same request (method, URL, headers, body; one per call), so what it adds is"
            "\nclient time: a row's extra time without network, over the call against moto (the baseline over"
            "\nHTTP). The extra measured over HTTP directly is shown too; on a shared machine its noise is the"
            "\ndifference between two identical bare clients.\n"
        )
        for op in OPERATIONS:
            for kind in (PROTECTED, DEADLINE, SHARED):
                if (op.title, kind) not in overheads:
                    continue
                added, _ = local_extras[(op.title, kind)]
                direct, call_ns = overheads[(op.title, kind)]
                noise = abs(overheads[(op.title, BARE_AGAIN)][0] / overheads[(op.title, BARE_AGAIN)][1])
                verdict = "PASS" if added / call_ns <= TARGET else "FAIL"
                print(
                    f"- {verdict}: {op.title}, {kind}: {added / 1e3:+.1f} µs = {added / call_ns:+.1%} of the call"
                    f" (target ≤ {TARGET:.0%}); over HTTP directly {direct / call_ns:+.1%}"
                    f" (two identical bare clients: {noise:.1%} apart)"
                )
        base_us = next(c for c in blocks[0].calls if c.name == BARE and c.operation == OPERATIONS[1].title).median / 1e3
        print(
            f"- the handlers' own time inside real calls, {direct_us:.1f} µs, is {direct_us / base_us:.2%}"
            f" of a {OPERATIONS[1].title} against moto ({base_us:,.0f} µs)"
        )
        verdict = "PASS" if all(r[2] == "1.00" for r in counts) else "FAIL"
        print(f"- {verdict}: the protected client makes 1 HTTP request per call when nothing fails ({protected_rate:.2f})")
        for name in breakers_closed():
            print(f"- WARNING: the breaker {name} is not closed")
        if info is not None and modes.stores != {"RedisBreakerStore"}:
            print(f"- WARNING: the Redis row ran on {sorted(modes.stores)}, not RedisBreakerStore")
        if modes.calls:
            verdict = "PASS" if modes.sends == 0 else "FAIL"
            print(
                f"- {verdict}: breakers in Redis, no Redis round trip on the calls' path "
                f"({modes.sends / modes.calls:.3f} per call over {modes.calls:,} calls; background sync not counted)"
            )
        if modes.unhealthy:
            print(f"- WARNING: the Redis breaker store had fallen back to local state after {modes.unhealthy} round(s)")
        print(
            f"\nMachine: {os.cpu_count()} cores, shared with other work; moto runs on the same cores, in a child process."
            "\nCompare the ratios measured in one run, not absolute µs across runs."
            f"\nTook {time.perf_counter() - started:.1f} s."
        )
        return 0
    finally:
        modes.use("memory")  # closes the Redis store and its sync thread
        moto.stop()
        if info is not None:
            deleted = harness.cleanup(info, prefix)
            print(f"\n(cleaned up {deleted} Redis key(s) under {prefix}*)")
            info.close()


if __name__ == "__main__":
    sys.exit(main())
