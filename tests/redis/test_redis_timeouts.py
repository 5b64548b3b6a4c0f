"""Timeouts: a connection whose call timed out is dropped, never reused, so a late reply
is never read as the answer to a later call; and a blocking wait longer than the socket
timeout is not mistaken for a dead server.

The URL's query parameters that redis-py understands (``socket_timeout=0.2``) pass
through to the client; ``reconnect_s`` is the broker's own retry window."""

from __future__ import annotations

import threading
import time

import pytest

from taskmill import BrokerError
from taskmill.brokers import open_broker
from taskmill.brokers.base import Outgoing, QueueStats, ResultRecord, StoredResult

PAUSED_IDS = [f"a{i}" for i in range(3)]
LATER_IDS = [f"b{i}" for i in range(3)]


def _body(id: str) -> bytes:
    return f'{{"value": "result of {id}"}}'.encode()


def test_a_call_that_timed_out_never_lets_its_late_reply_answer_a_later_call(start_redis, prefix):
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix, socket_timeout=0.2, reconnect_s=0.5))
    try:
        broker.store_results(
            [ResultRecord(i, "SUCCESS", _body(i), 600) for i in PAUSED_IDS + LATER_IDS]
        )
        broker.enqueue([Outgoing("m1", "q", b"1"), Outgoing("m2", "q", b"2")])

        server.pause()
        try:
            # MGET, MGET + a script (an id without a result), TIME, a script, a pipeline:
            # each sent on a connection that then times out, its reply still owed
            calls = [
                *(lambda i=i: broker.fetch_results([i]) for i in PAUSED_IDS),
                lambda: broker.fetch_results(["nobody"]),
                broker.now,
                broker.stats,
                broker.dead_letters,
            ]
            for call in calls:
                started = time.monotonic()
                with pytest.raises(BrokerError, match=r"unreachable \(\w+\): Timeout"):
                    call()
                assert time.monotonic() - started < 3.0
        finally:
            server.resume()

        for id in LATER_IDS:
            assert broker.fetch_results([id]) == {id: StoredResult("SUCCESS", _body(id))}
            assert broker.stats() == {"q": QueueStats(ready=2)}
            assert broker.fetch_results(["nobody"]) == {}
            assert abs(broker.now() - time.time()) < 5
            assert broker.dead_letters() == []
        assert broker.fetch_results(PAUSED_IDS) == {
            id: StoredResult("SUCCESS", _body(id)) for id in PAUSED_IDS
        }
    finally:
        broker.close()


def test_blocking_waits_longer_than_the_socket_timeout_are_not_mistaken_for_a_dead_server(
    shared_url,
):
    broker = open_broker(f"{shared_url}&socket_timeout=0.2&reconnect_s=0.5")
    try:
        started = time.monotonic()
        assert broker.reserve(["idle"], 1, 30, wait_s=1.0) == []
        assert 0.9 <= time.monotonic() - started < 2.0

        started = time.monotonic()
        assert broker.wait_results(["no-such-id"], timeout=1.0) == {}
        assert 0.9 <= time.monotonic() - started < 2.0

        # a reserver blocked that long still wakes at once for a new message
        sender = threading.Timer(0.5, broker.enqueue, [[Outgoing("late", "idle", b"x")]])
        started = time.monotonic()
        sender.start()
        try:
            (delivery,) = broker.reserve(["idle"], 1, 30, wait_s=5.0)
        finally:
            sender.join()
        assert delivery.id == "late"
        assert time.monotonic() - started < 1.0
    finally:
        broker.close()
