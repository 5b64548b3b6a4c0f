"""Each thread's own connection (the hot paths skip redis-py's pool): it closes when its
thread ends, a forked process never uses its parent's, and ``limit_call_time`` replaces
the ones made with the old timeouts."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from taskmill.brokers import open_broker
from taskmill.brokers.base import Outgoing, ResultRecord, StoredResult
from taskmill.brokers.redis import IDLE_CHECK_S, RedisBroker


def _clients(server) -> int:
    """Connections the private server has open, besides the test's own admin one."""
    with server.client() as admin:
        return len(admin.client_list()) - 1


@pytest.mark.timeout(60)
def test_a_threads_own_connection_closes_when_the_thread_ends(start_redis, prefix):
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix))
    try:
        broker.enqueue([Outgoing("m", "q", b"x")])  # this thread's own connection
        before = _clients(server)

        def use() -> None:
            assert broker.fetch_results(["nobody"], final_only=True) == {}

        for _ in range(20):
            thread = threading.Thread(target=use)
            thread.start()
            thread.join()
        gc.collect()

        assert _clients(server) <= before  # 20 threads came and went, none left one open
    finally:
        broker.close()
    assert _clients(server) == 0


@pytest.mark.timeout(60)
def test_a_forked_process_makes_its_own_connection_and_leaves_the_parents_alone(
    start_redis, prefix
):
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix))
    try:
        broker.store_results([ResultRecord("r1", "SUCCESS", b"{}", 600)])
        assert broker.fetch_results(["r1"]) == {"r1": StoredResult("SUCCESS", b"{}")}
        pid = os.fork()
        if pid == 0:  # the child: uses the same broker object, then exits at once
            try:
                ok = broker.fetch_results(["r1"]) == {"r1": StoredResult("SUCCESS", b"{}")}
                broker.enqueue([Outgoing("from-child", "q", b"x")])
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # the parent's connection was neither used nor shut down by the child
        assert broker.fetch_results(["r1"]) == {"r1": StoredResult("SUCCESS", b"{}")}
        (delivery,) = broker.reserve(["q"], 10, lease_s=30, wait_s=0)
        assert delivery.id == "from-child"
    finally:
        broker.close()


@pytest.mark.timeout(60)
def test_limit_call_time_applies_to_the_threads_own_connections(start_redis, prefix):
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix))
    assert isinstance(broker, RedisBroker)
    try:
        broker.enqueue([Outgoing("m", "q", b"x")])
        broker.limit_call_time(0.5)
        conn = broker._own_connection()
        assert conn.socket_timeout == 0.5
        assert broker.reserve(["q"], 1, lease_s=30, wait_s=0)[0].id == "m"
    finally:
        broker.close()


@pytest.mark.timeout(60)
def test_a_connection_the_server_closed_while_idle_is_made_afresh_without_an_error(
    start_redis, prefix
):
    """No retry pause and no error (even with no retry window at all): a thread's own
    connection idle for a while is checked before use, as redis-py's pool does."""
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix, reconnect_s=0))
    try:
        broker.enqueue([Outgoing("m1", "q", b"x")])
        with server.client() as admin:
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        time.sleep(IDLE_CHECK_S + 0.2)
        started = time.monotonic()
        broker.enqueue([Outgoing("m2", "q", b"y")])
        assert time.monotonic() - started < 0.04  # no retry pause (50 ms) was needed
        assert [d.id for d in broker.reserve(["q"], 10, lease_s=30, wait_s=0)] == ["m1", "m2"]
    finally:
        broker.close()


@pytest.mark.timeout(60)
def test_a_unix_socket_url_works(start_redis, prefix, tmp_path):
    path = tmp_path / "redis.sock"
    server = start_redis("--unixsocket", str(path), "--unixsocketperm", "700")
    assert server.port
    broker = open_broker(f"unix://{path}?db=2&prefix={prefix}")
    try:
        broker.enqueue([Outgoing("m", "q", b"x")])
        assert broker.reserve(["q"], 1, lease_s=30, wait_s=0)[0].id == "m"
        with server.client(db=2) as admin:
            assert admin.exists(f"{prefix}:{{q}}:msg")
    finally:
        broker.close()
