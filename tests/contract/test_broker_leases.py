"""Contract: leases — reclaim, stale tokens, and moving a leased message on."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from taskmill.brokers.base import Broker, Delivery, Outgoing, ResultRecord, StoredResult
from taskmill.states import FAILURE, STARTED

SHORT = 0.2  # a lease that runs out within the test


def take(broker: Broker, lease_s: float = 30, wait_s: float = 0) -> Delivery:
    (delivery,) = broker.reserve(["q"], 1, lease_s=lease_s, wait_s=wait_s)
    return delivery


def reclaimed(broker: Broker) -> tuple[Delivery, Delivery]:
    """A message leased briefly, then reclaimed by a second reserve: (stale, current)."""
    broker.enqueue([Outgoing("a", "q", b"body")])
    stale = take(broker, lease_s=SHORT)
    time.sleep(SHORT + 0.1)
    return stale, take(broker)


def test_a_leased_message_is_not_handed_out_again_while_leased(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    take(broker)

    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []


def test_an_expired_lease_is_reclaimed_with_a_new_token(broker: Broker) -> None:
    stale, current = reclaimed(broker)

    assert (current.id, current.body) == ("a", b"body")
    assert (stale.deliveries, current.deliveries) == (1, 2)
    assert current.lease != stale.lease


STALE_OPERATIONS: dict[str, Callable[[Broker, Delivery], bool]] = {
    "ack": lambda b, d: b.ack([d]) == [True],
    "extend": lambda b, d: b.extend([d], 30) == [True],
    "release": lambda b, d: b.release([d]) == [True],
    "requeue": lambda b, d: b.requeue(d),
    "retry": lambda b, d: b.retry(d, delay=0),
    "dead_letter": lambda b, d: b.dead_letter(d, "stale"),
}


@pytest.mark.parametrize("operation", sorted(STALE_OPERATIONS))
def test_a_stale_lease_is_rejected_after_reclaim(broker: Broker, operation: str) -> None:
    stale, current = reclaimed(broker)

    assert STALE_OPERATIONS[operation](broker, stale) is False
    assert broker.dead_letters() == []
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert broker.ack([current]) == [True]


def test_ack_removes_the_message(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    delivery = take(broker, lease_s=SHORT)

    assert broker.ack([delivery]) == [True]
    assert broker.ack([delivery]) == [False]
    time.sleep(SHORT + 0.1)
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert broker.fetch_results(["a"]) == {}


def test_an_expired_lease_nobody_reclaimed_yet_is_still_current(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b""), Outgoing("b", "q", b"")])
    first, second = broker.reserve(["q"], 2, lease_s=SHORT, wait_s=0)
    time.sleep(SHORT + 0.1)

    assert broker.extend([first], 30) == [True]
    assert broker.ack([second]) == [True]
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []


def test_ack_answers_for_each_delivery(broker: Broker) -> None:
    stale, current = reclaimed(broker)
    broker.enqueue([Outgoing("b", "q", b"")])
    other = take(broker)

    assert broker.ack([stale, current, other]) == [False, True, True]
    assert broker.ack([]) == []


def test_extend_keeps_a_message_leased_past_its_original_expiry(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    delivery = take(broker, lease_s=SHORT)

    assert broker.extend([delivery], 30) == [True]
    time.sleep(SHORT + 0.1)

    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert broker.ack([delivery]) == [True]


def test_release_puts_a_message_back_at_once_without_counting_the_delivery(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    first = take(broker)

    assert broker.release([first]) == [True]
    again = take(broker)

    assert again.deliveries == 1
    assert again.lease != first.lease
    assert broker.release([first]) == [False]


def test_a_batch_from_several_queues_is_extended_released_and_acked_per_delivery(
    broker: Broker,
) -> None:
    queues = [f"q{i}" for i in range(6)]
    broker.enqueue([Outgoing(f"m{i}", q, b"") for i, q in enumerate(queues)])
    batch = broker.reserve(queues, 6, lease_s=SHORT, wait_s=0)
    assert sorted(d.id for d in batch) == [f"m{i}" for i in range(6)]
    stale, current = reclaimed(broker)  # a stale delivery in the middle of the batch
    mixed = [*batch[:3], stale, *batch[3:]]

    assert broker.extend(mixed, 30) == [True, True, True, False, True, True, True]
    time.sleep(SHORT + 0.1)
    assert broker.reserve(queues, 6, lease_s=30, wait_s=0) == []
    assert broker.release(mixed[:2]) == [True, True]
    assert broker.ack([*mixed[2:], current]) == [True, False, True, True, True, True]
    again = broker.reserve(queues, 6, lease_s=30, wait_s=0)
    assert sorted(d.id for d in again) == sorted(d.id for d in batch[:2])


def test_release_keeps_the_message_ahead_of_later_ones(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b""), Outgoing("b", "q", b"")])
    first = take(broker)
    broker.release([first])

    assert take(broker).id == "a"


def test_requeue_puts_a_message_back_counting_the_delivery(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])

    assert broker.requeue(take(broker)) is True
    again = take(broker)

    assert (again.deliveries, again.attempt) == (2, 0)


def test_requeue_honours_its_delay(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    eta = broker.now() + 0.3

    assert broker.requeue(take(broker), delay=0.3) is True
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert take(broker, wait_s=5).deliveries == 2
    assert broker.now() >= eta


def test_retry_increments_attempt_resets_deliveries_and_honours_its_delay(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing("a", "q", b"body")])
    broker.requeue(take(broker))
    second = take(broker)
    assert second.deliveries == 2
    eta = broker.now() + 0.3

    assert broker.retry(second, delay=0.3) is True
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    again = take(broker, wait_s=5)

    assert broker.now() >= eta
    assert (again.attempt, again.deliveries, again.body) == (1, 1, b"body")


def test_dead_letter_moves_a_message_to_the_dead_letter_store_with_its_reason(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing("a", "q", b"body")])
    delivery = take(broker)
    before = broker.now()

    assert broker.dead_letter(delivery, "worker lost 3 times") is True
    (dead,) = broker.dead_letters()

    assert (dead.id, dead.queue, dead.body) == ("a", "q", b"body")
    assert (dead.reason, dead.deliveries, dead.attempt) == ("worker lost 3 times", 1, 0)
    assert before - 1 <= dead.dead_at <= broker.now() + 1
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert broker.ack([delivery]) == [False]


def test_dead_letters_are_listed_newest_first_by_queue_and_limit(broker: Broker) -> None:
    for i, queue in enumerate(["one", "two", "one"]):
        broker.enqueue([Outgoing(f"m{i}", queue, b"")])
        (delivery,) = broker.reserve([queue], 1, lease_s=30, wait_s=0)
        broker.dead_letter(delivery, f"reason {i}")
        time.sleep(0.01)

    assert [d.id for d in broker.dead_letters()] == ["m2", "m1", "m0"]
    assert [d.id for d in broker.dead_letters("one")] == ["m2", "m0"]
    assert [d.id for d in broker.dead_letters(limit=1)] == ["m2"]
    assert broker.dead_letters("three") == []


def test_dead_letter_stores_its_result_in_the_same_step(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"body")])
    record = ResultRecord("a", FAILURE, b"why", ttl=60)

    assert broker.dead_letter(take(broker), "poison", record) is True

    assert broker.fetch_results(["a"])["a"] == StoredResult(FAILURE, b"why")
    assert [d.reason for d in broker.dead_letters()] == ["poison"]


def test_a_stale_dead_letter_stores_no_result(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"body")])
    stale = take(broker, lease_s=0.05)
    time.sleep(0.1)
    take(broker)  # someone else holds it now

    assert broker.dead_letter(stale, "poison", ResultRecord("a", FAILURE, b"x", 60)) is False
    assert broker.fetch_results(["a"])["a"].state == STARTED
    assert broker.dead_letters() == []
