"""Redis goes away and comes back: a worker keeps its pid and consumes again within 5 s,
and a client that cannot reach Redis gets a BrokerError that names the server but never
its password."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import pytest

from taskmill import App, BrokerError
from taskmill.brokers import open_broker
from taskmill.brokers.base import Outgoing, ResultRecord, StoredResult
from taskmill.worker.holdings import Held, Holdings
from taskmill.worker.slot import ChildSlot

RECOVERY_S = 5.0


@dataclass(frozen=True)
class Outage:
    """How Redis goes away, and how long the worker's broker keeps retrying a call."""

    persistent: bool  # appendonly with fsync always: the data survives SIGKILL
    down_s: float
    worker_reconnect_s: float | None  # None: the broker's default (20 s)


OUTAGES = {
    # shorter than the worker's reconnect window: the broker's own retries ride it out
    "durable-restart-inside-the-reconnect-window": Outage(True, 2.0, None),
    # longer than the window: calls fail with BrokerError, the worker's loops retry them
    "ephemeral-restart-past-the-reconnect-window": Outage(False, 3.0, 0.5),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outage", list(OUTAGES.values()), ids=list(OUTAGES))
def test_a_worker_consumes_again_within_5s_of_redis_coming_back_with_the_same_pid(
    workspace, start_redis, prefix, outage
):
    password = f"pw-{uuid.uuid4().hex}"
    persistence = ("--appendonly", "yes", "--appendfsync", "always")
    server = start_redis(*(persistence if outage.persistent else ()), password=password)
    window = {} if outage.worker_reconnect_s is None else {"reconnect_s": outage.worker_reconnect_s}
    worker_url = server.url_for(password=password, prefix=prefix, **window)
    workspace.use_broker(server.url_for(password=password, prefix=prefix, reconnect_s=0.5))
    workspace.write_redis_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_named_worker("w", broker=worker_url)
    children = worker.children()
    before = tasks.square.delay(3)
    assert before.get(timeout=10) == 9
    # The worker's single child acks its next task only once Redis answered the ack of
    # `before`: an ack whose reply the crash cut off is sent again after the restart
    # (it is kept, not dropped), and would store its result on the emptied server.
    assert tasks.square.delay(2).get(timeout=10) == 4

    server.kill()
    down_at = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        tasks.square.delay(4)
    refused_after = time.monotonic() - down_at
    message = str(caught.value)
    assert "unreachable" in message
    assert f":***@127.0.0.1:{server.port}/" in message
    assert password not in message
    assert refused_after < 0.5 + 1.0  # the client's reconnect window, and one last try

    time.sleep(max(0.0, outage.down_s - (time.monotonic() - down_at)))  # the outage itself
    assert worker.process.poll() is None
    server.start()  # the same port, the same --dir
    up_at = time.monotonic()
    after = tasks.square.delay(5)
    assert after.get(timeout=10) == 25
    recovery = time.monotonic() - up_at
    print(
        f"\n{'durable' if outage.persistent else 'ephemeral'}: down {outage.down_s:.1f}s, "
        f"a task sent after the restart completed {recovery:.2f}s after Redis came back"
    )
    assert recovery <= RECOVERY_S

    assert worker.process.poll() is None
    assert [r.get(timeout=10) for r in [tasks.square.delay(x) for x in range(10)]] == [
        x * x for x in range(10)
    ]
    registered = workspace.wait_until(
        lambda: [json.loads(w) for w in tasks.app.broker.workers()], 5, "a registry heartbeat"
    )
    assert [w["pid"] for w in registered] == [worker.pid]  # the same supervisor
    assert worker.children() == children  # and the same child: it rode the outage out
    if outage.persistent:
        assert tasks.app.AsyncResult(before.id).get(timeout=1) == 9  # it survived the crash
    else:
        assert tasks.app.AsyncResult(before.id).status == "UNKNOWN"  # forgotten: no persistence
    log = worker.log()
    assert password not in log
    if outage.worker_reconnect_s is not None:
        assert "broker error" in log  # it said so, rather than stopping silently


def test_a_queue_is_known_again_after_redis_restarted_without_its_data(start_redis, prefix):
    """The broker remembers which queues it registered (in ``P:queues``, read by stats,
    status and revoke); when the server comes back empty, the next enqueue registers the
    queue again, or its messages would be invisible to ``stats`` and ``revoke``."""
    server = start_redis()
    broker = open_broker(server.url_for(prefix=prefix))
    try:
        broker.enqueue([Outgoing("a", "parked", b"a")])
        assert broker.stats()["parked"].ready == 1
        server.kill()
        server.start()  # no persistence: everything is gone

        broker.enqueue([Outgoing("b", "parked", b"b")])

        assert broker.stats()["parked"].ready == 1
        assert broker.fetch_results(["b"])["b"].state == "PENDING"
        assert broker.revoke("b", ResultRecord("b", "REVOKED", b"", 60))
        assert broker.reserve(["parked"], 10, 30, 0) == []
    finally:
        broker.close()


def test_results_whose_ack_failed_are_kept_and_stored_once_redis_answers(start_redis, prefix):
    """A child's ack fails on a broker error after its task ran: the result is not thrown
    away (the task would run again); it is kept, with its message held, and the next
    flush stores it and acknowledges the message."""
    server = start_redis("--appendonly", "yes", "--appendfsync", "always")
    app = App("keep", broker=server.url_for(prefix=prefix, reconnect_s=0.3))
    slot = ChildSlot(4)
    holdings = Holdings(app, slot)
    try:
        app.broker.enqueue([Outgoing("a", "default", b"a")])
        (delivery,) = app.broker.reserve(["default"], 1, lease_s=30, wait_s=0)
        index = slot.hold(delivery, "t")
        assert index is not None
        held = Held(index, delivery, None, None)
        holdings.add(held, waiting=False)
        holdings.ack_later(held, ResultRecord("a", "SUCCESS", b"value", 60))
        server.kill()

        holdings.flush()  # BrokerError: logged, and kept

        assert (holdings.settling(), len(holdings)) == (1, 1)
        assert [e.message.id for e in slot.read().entries] == ["a"]
        server.start()
        holdings.flush()

        assert (holdings.settling(), len(holdings)) == (0, 0)
        assert slot.read().entries == []
        assert app.broker.fetch_results(["a"]) == {"a": StoredResult("SUCCESS", b"value")}
        assert app.broker.ack([delivery]) == [False]  # acknowledged already: gone
    finally:
        app.close()
