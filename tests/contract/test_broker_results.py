"""Contract: results — first final result wins, derived states, expiry, waiting, revoke."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from taskmill.brokers.base import Broker, Delivery, Outgoing, ResultRecord, StoredResult
from taskmill.states import FAILURE, PENDING, RETRY, REVOKED, STARTED, SUCCESS


def result(id: str, body: bytes = b"ok", state: str = SUCCESS, ttl: float = 60) -> ResultRecord:
    return ResultRecord(id, state, body, ttl)


def take(broker: Broker, lease_s: float = 30) -> Delivery:
    (delivery,) = broker.reserve(["q"], 1, lease_s=lease_s, wait_s=0)
    return delivery


def test_ack_stores_results_and_removes_the_messages_together(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b""), Outgoing("b", "q", b"")])
    deliveries = broker.reserve(["q"], 2, lease_s=30, wait_s=0)

    assert broker.ack(deliveries, [result("a", b"A"), result("b", b"B", FAILURE)]) == [True, True]

    assert broker.fetch_results(["a", "b"]) == {
        "a": StoredResult(SUCCESS, b"A"),
        "b": StoredResult(FAILURE, b"B"),
    }


def test_ack_and_reserve_acks_then_leases_the_next_batch(broker: Broker) -> None:
    broker.enqueue([Outgoing(id, "q", id.encode()) for id in "abcd"])
    first = broker.reserve(["q"], 2, lease_s=30, wait_s=0)

    accepted, second = broker.ack_and_reserve(
        first, [result("a", b"A"), result("b", b"B")], ["q"], 10, lease_s=30, wait_s=0
    )

    assert accepted == [True, True]
    assert [d.id for d in second] == ["c", "d"]
    assert broker.fetch_results(["a", "b"], final_only=True) == {
        "a": StoredResult(SUCCESS, b"A"),
        "b": StoredResult(SUCCESS, b"B"),
    }
    assert broker.ack(second, []) == [True, True]


def test_ack_and_reserve_rejects_a_stale_ack_and_waits_for_new_work(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    stale = take(broker, lease_s=0.2)
    time.sleep(0.3)
    current = take(broker)
    threading.Timer(0.2, broker.enqueue, [[Outgoing("later", "q", b"")]]).start()

    accepted, reserved = broker.ack_and_reserve(
        [stale], [result("a", b"first")], ["q"], 10, lease_s=30, wait_s=5
    )

    assert accepted == [False]
    assert [d.id for d in reserved] == ["later"]
    assert broker.ack([current], []) == [True]
    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"first")}


def test_ack_and_reserve_with_nothing_to_ack_is_a_reserve(broker: Broker) -> None:
    assert broker.ack_and_reserve([], [], ["q"], 10, lease_s=30, wait_s=0) == ([], [])
    broker.enqueue([Outgoing("a", "q", b"")])
    assert [d.id for d in broker.ack_and_reserve([], [], ["q"], 10, 30, 0)[1]] == ["a"]


def test_a_stale_ack_still_stores_its_results(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    stale = take(broker, lease_s=0.2)
    time.sleep(0.3)
    current = take(broker)

    assert broker.ack([stale], [result("a", b"first")]) == [False]
    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"first")}
    assert broker.ack([current], [result("a", b"second")]) == [True]
    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"first")}


def test_the_first_final_result_wins(broker: Broker) -> None:
    assert broker.store_results([result("a", b"first")]) == [True]
    assert broker.store_results([result("a", b"second", FAILURE)]) == [False]

    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"first")}


def test_fetch_results_final_only_leaves_out_ids_without_a_final_result(broker: Broker) -> None:
    broker.enqueue([Outgoing("queued", "q", b""), Outgoing("later", "q", b"", delay=60)])
    broker.store_results([result("done", b"D"), result("failed", b"F", FAILURE)])

    ids = ["done", "failed", "queued", "later", "unknown"]
    assert broker.fetch_results(ids, final_only=True) == {
        "done": StoredResult(SUCCESS, b"D"),
        "failed": StoredResult(FAILURE, b"F"),
    }
    assert set(broker.fetch_results(ids)) == {"done", "failed", "queued", "later"}


def test_store_results_answers_for_each_result(broker: Broker) -> None:
    broker.store_results([result("a")])

    assert broker.store_results([result("a"), result("b"), result("b")]) == [False, True, False]
    assert broker.store_results([]) == []


def test_fetch_results_derives_the_state_of_messages_still_in_the_broker(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing(id, "q", b"") for id in ("retry", "started", "pending")])
    broker.retry(take(broker), delay=60)
    assert take(broker).id == "started"

    assert broker.fetch_results(["pending", "started", "retry"]) == {
        "pending": StoredResult(PENDING),
        "started": StoredResult(STARTED),
        "retry": StoredResult(RETRY),
    }


def test_fetch_results_reports_a_message_whose_lease_expired_as_not_started(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    take(broker, lease_s=0.2)
    time.sleep(0.3)

    assert broker.fetch_results(["a"]) == {"a": StoredResult(PENDING)}


def test_fetch_results_prefers_the_stored_result_over_the_message(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    take(broker)
    broker.store_results([result("a")])

    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"ok")}


def test_fetch_results_leaves_unknown_ids_out(broker: Broker) -> None:
    broker.store_results([result("known")])

    assert broker.fetch_results(["unknown", "known"]) == {"known": StoredResult(SUCCESS, b"ok")}
    assert broker.fetch_results([]) == {}


def test_fetch_results_answers_for_many_ids_at_once(broker: Broker) -> None:
    wanted = [f"id{i}" for i in range(1500)]
    broker.store_results([result(id, id.encode()) for id in wanted[::2]])
    broker.enqueue([Outgoing(id, "q", b"") for id in wanted[1::2]])

    found = broker.fetch_results([*wanted, "unknown"])

    assert found == {
        id: StoredResult(SUCCESS, id.encode()) if i % 2 == 0 else StoredResult(PENDING)
        for i, id in enumerate(wanted)
    }


def test_a_result_expires_after_its_ttl(broker: Broker) -> None:
    broker.store_results([result("short", ttl=0.2), result("long", ttl=60)])
    time.sleep(0.3)

    assert broker.fetch_results(["short", "long"]) == {"long": StoredResult(SUCCESS, b"ok")}


def test_an_expired_result_no_longer_counts_as_first(broker: Broker) -> None:
    broker.store_results([result("a", b"old", ttl=0.2)])
    time.sleep(0.3)

    assert broker.store_results([result("a", b"new")]) == [True]
    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"new")}


def test_forget_deletes_results(broker: Broker) -> None:
    broker.store_results([result("a"), result("b")])

    broker.forget(["a", "unknown"])

    assert broker.fetch_results(["a", "b"]) == {"b": StoredResult(SUCCESS, b"ok")}
    assert broker.store_results([result("a", b"again")]) == [True]


def test_wait_results_returns_as_soon_as_a_result_is_stored(
    broker: Broker, open_client: Callable[[], Broker]
) -> None:
    other = open_client()
    timer = threading.Timer(0.2, other.store_results, [[result("b")]])
    started = time.monotonic()
    timer.start()
    try:
        found = broker.wait_results(["a", "b"], timeout=10)
    finally:
        timer.join()

    assert found == {"b": StoredResult(SUCCESS, b"ok")}
    assert time.monotonic() - started < 5


def test_wait_results_returns_only_final_results(broker: Broker) -> None:
    broker.enqueue([Outgoing("queued", "q", b"")])
    broker.store_results([result("done")])

    assert broker.wait_results(["queued", "done"], timeout=0) == {
        "done": StoredResult(SUCCESS, b"ok")
    }


def test_wait_results_returns_nothing_after_its_timeout(broker: Broker) -> None:
    broker.enqueue([Outgoing("queued", "q", b"")])
    started = time.monotonic()

    assert broker.wait_results(["queued", "unknown"], timeout=0.3) == {}
    assert 0.25 <= time.monotonic() - started < 5


def test_revoke_of_a_queued_message_removes_it_and_stores_the_result(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])

    assert broker.revoke("a", result("a", b"revoked", REVOKED)) is True

    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []
    assert broker.fetch_results(["a"]) == {"a": StoredResult(REVOKED, b"revoked")}


def test_revoke_of_a_leased_message_stores_the_result_but_keeps_the_message(
    broker: Broker,
) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    delivery = take(broker)

    assert broker.revoke("a", result("a", b"revoked", REVOKED)) is True

    assert broker.fetch_results(["a"]) == {"a": StoredResult(REVOKED, b"revoked")}
    assert broker.ack([delivery], [result("a", b"ran anyway")]) == [True]
    assert broker.fetch_results(["a"]) == {"a": StoredResult(REVOKED, b"revoked")}


def test_revoke_of_a_message_whose_lease_expired_removes_it(broker: Broker) -> None:
    broker.enqueue([Outgoing("a", "q", b"")])
    take(broker, lease_s=0.2)
    time.sleep(0.3)

    assert broker.revoke("a", result("a", b"revoked", REVOKED)) is True
    assert broker.reserve(["q"], 1, lease_s=30, wait_s=0) == []


def test_revoke_after_a_final_result_returns_false(broker: Broker) -> None:
    broker.store_results([result("a", b"done")])

    assert broker.revoke("a", result("a", b"revoked", REVOKED)) is False
    assert broker.fetch_results(["a"]) == {"a": StoredResult(SUCCESS, b"done")}


def test_revoke_of_an_unknown_id_stores_the_result(broker: Broker) -> None:
    assert broker.revoke("a", result("a", b"revoked", REVOKED)) is True
    assert broker.fetch_results(["a"]) == {"a": StoredResult(REVOKED, b"revoked")}
