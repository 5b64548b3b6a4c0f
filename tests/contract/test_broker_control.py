"""Contract: the worker registry and queue statistics."""

from __future__ import annotations

import time

from taskmill.brokers.base import Broker, Outgoing, QueueStats


def test_a_registered_worker_is_listed(broker: Broker) -> None:
    broker.register_worker("w1", b"one", ttl=30)
    broker.register_worker("w2", b"two", ttl=30)

    assert sorted(broker.workers()) == [b"one", b"two"]


def test_registering_again_refreshes_the_info_and_ttl(broker: Broker) -> None:
    broker.register_worker("w1", b"old", ttl=0.2)
    broker.register_worker("w1", b"new", ttl=30)
    time.sleep(0.3)

    assert broker.workers() == [b"new"]


def test_an_unregistered_worker_is_not_listed(broker: Broker) -> None:
    broker.register_worker("w1", b"one", ttl=30)
    broker.register_worker("w2", b"two", ttl=30)

    broker.unregister_worker("w1")
    broker.unregister_worker("unknown")

    assert broker.workers() == [b"two"]


def test_a_worker_disappears_when_its_ttl_runs_out(broker: Broker) -> None:
    broker.register_worker("gone", b"gone", ttl=0.2)
    broker.register_worker("alive", b"alive", ttl=30)
    time.sleep(0.3)

    assert broker.workers() == [b"alive"]


def test_stats_are_empty_for_an_empty_broker(broker: Broker) -> None:
    assert broker.stats() == {}


def test_stats_count_ready_delayed_in_flight_and_dead_per_queue(broker: Broker) -> None:
    broker.enqueue(
        [Outgoing(f"r{i}", "q", b"") for i in range(4)]
        + [Outgoing(f"d{i}", "q", b"", delay=60) for i in range(2)]
        + [Outgoing("other", "other", b"")]
    )
    leased = broker.reserve(["q"], 2, lease_s=30, wait_s=0)
    broker.dead_letter(leased[0], "poison")
    (gone,) = broker.reserve(["other"], 1, lease_s=30, wait_s=0)
    broker.dead_letter(gone, "poison")

    assert broker.stats() == {
        "q": QueueStats(ready=2, delayed=2, in_flight=1, dead=1),
        "other": QueueStats(dead=1),
    }


def test_stats_count_a_message_whose_lease_expired_as_ready(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b""), Outgoing("b", "q", b"")])
    broker.reserve(["q"], 1, lease_s=0.2, wait_s=0)
    broker.reserve(["q"], 1, lease_s=30, wait_s=0)
    time.sleep(0.3)

    assert broker.stats() == {"q": QueueStats(ready=1, in_flight=1)}


def test_stats_count_a_retry_waiting_for_its_time_as_delayed(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    (delivery,) = broker.reserve(["q"], 1, lease_s=30, wait_s=0)
    broker.retry(delivery, delay=60)

    assert broker.stats() == {"q": QueueStats(delayed=1)}
