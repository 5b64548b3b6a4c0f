"""Contract: enqueue and reserve — order, queues, ETAs, blocking."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from taskmill.brokers.base import Broker, Outgoing


def msg(id: str, queue: str = "q", priority: int = 0, delay: float = 0.0) -> Outgoing:
    return Outgoing(id, queue, id.encode(), priority, delay)


def ids(broker: Broker, queues: list[str], max_count: int = 100) -> list[str]:
    return [d.id for d in broker.reserve(queues, max_count, lease_s=30, wait_s=0)]


def test_reserve_returns_the_message_with_its_body_intact(broker: Broker) -> None:
    body = bytes(range(256)) + b"\x00tail"
    broker.enqueue([Outgoing("a", "q", body)])

    (delivery,) = broker.reserve(["q"], 1, lease_s=30, wait_s=0)

    assert (delivery.id, delivery.queue, delivery.body) == ("a", "q", body)
    assert (delivery.deliveries, delivery.attempt) == (1, 0)
    assert isinstance(delivery.lease, str)
    assert delivery.lease


def test_reserve_is_fifo_within_a_priority(broker: Broker) -> None:
    broker.enqueue([msg(f"a{i}") for i in range(5)])
    for i in range(5):
        broker.enqueue([msg(f"b{i}")])

    assert ids(broker, ["q"]) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]


def test_reserve_returns_highest_priority_first(broker: Broker) -> None:
    broker.enqueue([msg("low", priority=-1), msg("mid1"), msg("high1", priority=5)])
    broker.enqueue([msg("top", priority=9), msg("high2", priority=5), msg("mid2")])

    assert ids(broker, ["q"], max_count=2) == ["top", "high1"]
    assert ids(broker, ["q"], max_count=1) == ["high2"]
    assert ids(broker, ["q"]) == ["mid1", "mid2", "low"]


def test_reserve_takes_only_from_the_given_queues(broker: Broker) -> None:
    broker.enqueue([msg("a", "one"), msg("b", "two"), msg("c", "three")])

    assert ids(broker, ["two"]) == ["b"]
    assert ids(broker, ["two"]) == []
    assert sorted(ids(broker, ["one", "three"])) == ["a", "c"]


@pytest.mark.brokers("sqlite", "redis")  # on a cluster: queue order first, see test_cluster.py
def test_reserve_across_queues_orders_by_priority_then_enqueue_order(broker: Broker) -> None:
    broker.enqueue([msg("a", "one"), msg("b", "two", priority=1)])
    broker.enqueue([msg("c", "one", priority=1), msg("d", "two")])

    assert ids(broker, ["one", "two"]) == ["b", "c", "a", "d"]


def test_reserve_returns_at_most_max_count(broker: Broker) -> None:
    broker.enqueue([msg(f"m{i}") for i in range(10)])

    assert len(ids(broker, ["q"], max_count=3)) == 3
    assert len(ids(broker, ["q"], max_count=100)) == 7


def test_enqueue_ignores_an_id_already_queued(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"first")])
    broker.enqueue([Outgoing("a", "q", b"second"), Outgoing("b", "q", b"b")])

    deliveries = broker.reserve(["q"], 10, lease_s=30, wait_s=0)

    assert [(d.id, d.body) for d in deliveries] == [("a", b"first"), ("b", b"b")]


def test_enqueue_of_nothing_is_a_no_op(broker: Broker) -> None:
    broker.enqueue([])

    assert ids(broker, ["q"]) == []


def test_message_with_a_delay_is_not_due_earlier(broker: Broker) -> None:
    eta = broker.now() + 0.3
    broker.enqueue([msg("later", delay=0.3)])

    assert ids(broker, ["q"]) == []
    (delivery,) = broker.reserve(["q"], 1, lease_s=30, wait_s=5)

    assert delivery.id == "later"
    assert broker.now() >= eta


def test_message_with_no_delay_is_due_at_once(broker: Broker) -> None:
    broker.enqueue([msg("past", delay=0)])

    assert ids(broker, ["q"]) == ["past"]


def test_reserve_waits_up_to_wait_s_then_returns_nothing(broker: Broker) -> None:
    started = time.monotonic()

    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0.3) == []
    assert 0.25 <= time.monotonic() - started < 5


def test_reserve_returns_promptly_when_a_message_arrives_during_the_wait(
    broker: Broker, open_client: Callable[[], Broker]
) -> None:
    producer = open_client()
    timer = threading.Timer(0.2, producer.enqueue, [[msg("a")]])
    started = time.monotonic()
    timer.start()
    try:
        deliveries = broker.reserve(["q"], 1, lease_s=30, wait_s=10)
    finally:
        timer.join()

    assert [d.id for d in deliveries] == ["a"]
    assert time.monotonic() - started < 5


def test_a_message_enqueued_by_one_client_is_reserved_by_another(
    broker: Broker, open_client: Callable[[], Broker]
) -> None:
    open_client().enqueue([msg("a")])

    assert ids(broker, ["q"]) == ["a"]
