"""FastScript: EVALSHA packed by hand on a thread's own connection, against real Redis servers."""

import multiprocessing
import threading
import time

import pytest
import redis
from django.conf import settings

from resilience.storage.redis.client import connect
from resilience.storage.redis.fastscript import FastScript
from tests.faults.proxy import FaultProxy

ECHO = "return 1"
FORK = multiprocessing.get_context("fork")


def call_and_tell_port(script: FastScript) -> int:
    """One call, then the local TCP port of the connection it used (CLIENT ID is not allowed in scripts):
    with no other caller, that connection is the one back on top of the idle stack."""
    assert script(["k"], [1, 2]) == 1
    return script._idle[-1]._sock.getsockname()[1]


def test_a_script_answers_as_redis_pys_evalsha_does(test_redis, key_prefix):
    script = FastScript(test_redis, "redis.call('SET', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[2], tonumber(ARGV[1]) + 1}")
    key = f"{key_prefix}:ünï:{{x}}"  # multi-byte keys: RESP lengths count bytes
    answer = script([key], [41, "värde"])
    assert answer == test_redis.evalsha(script.sha, 1, key, 41, "värde")
    assert answer == [key.encode(), "värde".encode(), 42]
    assert test_redis.get(key) == b"41"  # in the client's database (db 15 in the tests), not db 0


def test_many_keys_and_arguments_are_packed_right(test_redis, key_prefix):
    script = FastScript(test_redis, "return {#KEYS, #ARGV, KEYS[#KEYS], ARGV[#ARGV]}")
    keys = [f"{key_prefix}:{{x}}:{n}" for n in range(12)]  # numkeys of two digits
    assert script(keys, list(range(25))) == [12, 25, keys[-1].encode(), b"24"]


def test_concurrent_callers_never_share_a_connection_and_idle_ones_are_reused(test_redis):
    script = FastScript(test_redis, "return ARGV[1]")
    wrong: list[tuple[str, bytes]] = []
    go = threading.Barrier(8)

    def run(name: str) -> None:
        go.wait()
        for i in range(200):
            asked = f"{name}-{i}"
            answer = script([], [asked])
            if answer != asked.encode():
                wrong.append((asked, answer))

    threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []  # 1,600 calls, each answered with its own reply
    assert 1 <= len(script._idle) <= 8  # at most one connection per concurrent caller

    before = len(script._idle)
    later = [threading.Thread(target=script, args=([], ["x"])) for _ in range(5)]
    for t in later:  # short-lived threads one after another (a thread per request) open nothing new
        t.start()
        t.join()
    assert len(script._idle) == before


def _child_client_id(script: FastScript, out: "multiprocessing.Queue[int]") -> None:
    out.put(call_and_tell_port(script))


def test_a_forked_child_opens_its_own_connection_and_the_parents_still_works(test_redis):
    script = FastScript(test_redis, ECHO)
    parent_id = call_and_tell_port(script)
    out = FORK.Queue()
    child = FORK.Process(target=_child_client_id, args=(script, out))
    child.start()
    child_id = out.get(timeout=10)
    child.join(10)
    assert child_id != parent_id
    assert call_and_tell_port(script) == parent_id  # the child neither used nor closed the parent's socket


def test_a_flushed_script_cache_is_reloaded_once(redis_server):
    client = redis.Redis(port=redis_server.port)
    script = FastScript(client, "return 7")
    assert script([], []) == 7
    client.script_flush()
    assert script([], []) == 7
    assert client.script_exists(script.sha) == [True]


def test_a_script_error_is_raised_and_the_connection_stays_usable(test_redis):
    script = FastScript(test_redis, "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]")
    with pytest.raises(redis.ResponseError, match="boom"):
        script([], ["boom"])
    assert script([], ["fine"]) == b"fine"


def test_a_dead_server_is_an_error_within_the_timeout_and_it_reconnects_when_back(redis_server):
    script = FastScript(connect(redis_server.url, 0.2), "return 1")
    assert script([], []) == 1
    redis_server.kill()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        script([], [])
    assert time.monotonic() - started < 0.5
    redis_server.start()
    assert script([], []) == 1


def test_a_black_holed_server_times_out_and_the_stale_reply_never_answers_a_later_call(redis_server):
    proxy = FaultProxy("127.0.0.1", redis_server.port)
    try:
        script = FastScript(connect(proxy.url(), 0.2), "return ARGV[1]")
        assert script([], ["first"]) == b"first"
        proxy.mute()  # the server runs it, the reply is lost: the connection must not be reused as is
        with pytest.raises(redis.TimeoutError):
            script([], ["lost"])
        proxy.heal()
        assert script([], ["next"]) == b"next"
    finally:
        proxy.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda url: redis.Redis.from_url(url, single_connection_client=True),
        lambda url: redis.Redis(connection_pool=type("OtherPool", (redis.ConnectionPool,), {}).from_url(url)),
    ],
    ids=["single-connection client", "another pool class"],
)
def test_clients_it_cannot_copy_go_through_redis_py(make, key_prefix):
    client = make(settings.TEST_REDIS_URL)
    script = FastScript(client, "return {KEYS[1], ARGV[1]}")
    assert script._factory is None
    assert script([f"{key_prefix}:k"], [5]) == [f"{key_prefix}:k".encode(), b"5"]


def test_close_disconnects_every_thread_and_the_next_call_reconnects(test_redis):
    script = FastScript(test_redis, ECHO)
    call_and_tell_port(script)
    script.close()
    assert all(connection._sock is None for connection in script._idle)
    port = call_and_tell_port(script)  # connected again: the server sees this very connection
    assert f"127.0.0.1:{port}" in {client["addr"] for client in test_redis.client_list()}
