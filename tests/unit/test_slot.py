"""The child slot: a table of held messages, each with its own running state and hard
deadline, that a supervisor reads after the child is gone."""

from __future__ import annotations

import time

from taskmill.brokers.base import Delivery
from taskmill.worker.slot import ENTRY_BYTES, ChildSlot


def delivery(n: int, queue: str = "default") -> Delivery:
    return Delivery(f"id-{n}", queue, b"body", deliveries=1 + n % 2, attempt=n % 3, lease=f"L{n}")


def test_held_messages_are_read_back_with_their_running_state_and_limits():
    slot = ChildSlot(capacity=4)
    held = [slot.hold(delivery(n), f"task{n}") for n in range(3)]
    assert None not in held
    slot.start(held[0], 5.0)
    slot.start(held[1], None)

    state = slot.read()

    by_id = {e.message.id: e for e in state.entries}
    assert sorted(by_id) == ["id-0", "id-1", "id-2"]
    assert by_id["id-0"].running and by_id["id-0"].time_limit == 5.0
    assert by_id["id-1"].running and by_id["id-1"].time_limit is None
    assert not by_id["id-2"].running
    assert by_id["id-2"].message.delivery() == Delivery("id-2", "default", b"", 1, 2, "L2")
    assert [e.message.id for e in state.waiting()] == ["id-2"]
    assert by_id["id-2"].message.task == "task2"


def test_finished_and_freed_entries_leave_the_table_and_are_reused():
    slot = ChildSlot(capacity=2)
    first, second = slot.hold(delivery(0), "t"), slot.hold(delivery(1), "t")
    assert first is not None and second is not None
    assert slot.hold(delivery(2), "t") is None  # full: the caller gives it back

    slot.start(first, None)
    slot.finish(first)
    assert [e.running for e in slot.read().entries] == [False, False]  # ran, ack pending
    slot.free(first)

    assert [e.message.id for e in slot.read().entries] == ["id-1"]
    assert slot.hold(delivery(3), "t") == first


def test_a_record_too_long_for_an_entry_is_not_held():
    slot = ChildSlot(capacity=2)
    assert slot.hold(delivery(0, queue="q" * ENTRY_BYTES), "t") is None
    assert slot.read().entries == []


def test_overdue_looks_at_every_running_entry_and_counts_the_backstop():
    slot = ChildSlot(capacity=8)
    indexes = [slot.hold(delivery(n), "t") for n in range(3)]
    slot.start(indexes[0], None)
    slot.start(indexes[1], 60.0)
    slot.start(indexes[2], 0.5, backstop=2.0)
    now = time.monotonic()

    assert not slot.overdue(now)
    assert not slot.overdue(now + 2.0)  # past the limit, within the backstop
    assert slot.overdue(now + 2.6)
    (late,) = [e for e in slot.read().entries if e.overdue(now + 2.6)]
    assert late.message.id == "id-2" and late.time_limit == 0.5


def test_clear_frees_every_entry():
    slot = ChildSlot(capacity=3)
    for n in range(3):
        index = slot.hold(delivery(n), "t")
        assert index is not None
        slot.start(index, 1.0)
    slot.clear()

    assert slot.read().entries == []
    assert not slot.overdue(time.monotonic() + 10)
    assert slot.hold(delivery(9), "t") is not None
