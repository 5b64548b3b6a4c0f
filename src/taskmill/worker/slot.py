"""A child's slot: what a worker child holds and runs, in shared memory its supervisor reads.

A child holds many messages at once: a batch of fast tasks, or up to its async limit of
coroutines plus its threads' tasks. The slot is a table of fixed-size entries, one per
held message; each entry has its own state, hard deadline and limit::

    child  ── hold(delivery) ────▶ entry i: [ record: id, queue, lease, deliveries, attempt,
                                              task ]  state HELD
           ── start(i, limit) ───▶ entry i: state RUNNING, deadline = now + limit (+ backstop)
           ── finish(i) ─────────▶ entry i: state HELD (ran; its ack is pending)
           ── free(i) ───────────▶ entry i: state FREE (acknowledged, retried, dead-lettered)
    supervisor, every tick: overdue(now) ──▶ is any running entry past its deadline?
    supervisor, on the child's death: read() ──▶ which messages were running, which to release

Only the child writes, each entry from the thread that owns it (entries are allocated under
a lock); the supervisor reads entries' records only once the child is dead, so the two
never race on the bytes. A record is written before its state, so an entry whose state
says HELD or RUNNING has a complete record. Plain shared memory costs nothing on the hot
path: no pipe, no syscall per task.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..brokers.base import Delivery

__all__ = ["BatchEntry", "ChildSlot", "SlotEntry", "SlotState"]

#: bytes per entry's record; a message whose record is longer is not held (given back)
ENTRY_BYTES = 512
FREE, HELD, RUNNING = 0.0, 1.0, 2.0
#: numbers per entry: state, deadline (monotonic; 0 = none), limit, record length
_FIELDS = 4
_STATE, _DEADLINE, _LIMIT, _LENGTH = range(_FIELDS)


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One leased message a child holds, enough to release or settle it."""

    id: str
    queue: str
    lease: str
    deliveries: int
    attempt: int
    task: str

    def delivery(self) -> Delivery:
        return Delivery(self.id, self.queue, b"", self.deliveries, self.attempt, self.lease)


@dataclass(frozen=True, slots=True)
class SlotEntry:
    """A held message as the supervisor reads it: running or not, and its deadline."""

    message: BatchEntry
    running: bool
    deadline: float
    time_limit: float | None

    def overdue(self, now: float) -> bool:
        return self.running and bool(self.deadline) and now > self.deadline


@dataclass(frozen=True, slots=True)
class SlotState:
    """Everything a child held when the supervisor read its slot."""

    entries: list[SlotEntry]

    def running(self) -> list[SlotEntry]:
        return [e for e in self.entries if e.running]

    def waiting(self) -> list[SlotEntry]:
        return [e for e in self.entries if not e.running]


class ChildSlot:
    """Shared memory for one child, created by the supervisor before the fork.

    ``capacity``: how many messages the child may hold at once.
    """

    def __init__(self, capacity: int = 64) -> None:
        ctx = multiprocessing.get_context("fork")
        self.capacity = capacity
        self._numbers: Any = ctx.RawArray("d", capacity * _FIELDS)
        self._records: Any = ctx.RawArray("c", capacity * ENTRY_BYTES)
        self._records_at = ctypes.addressof(self._records)  # memmove: 7x a slice's speed
        self._lock = threading.Lock()
        self._free: list[int] = []
        self.clear()

    def clear(self) -> None:
        """Every entry free (a new child starts with an empty slot)."""
        for index in range(self.capacity):
            self._numbers[index * _FIELDS + _STATE] = FREE
        self._free = list(range(self.capacity - 1, -1, -1))

    # -- child side -------------------------------------------------------------------

    def hold(self, delivery: Delivery, task: str) -> int | None:
        """Record a held message; its entry's index, or None when the slot is full or
        its record too long (the caller gives that message back)."""
        row = [delivery.id, delivery.queue, delivery.lease, delivery.deliveries]
        data = json.dumps([*row, delivery.attempt, task]).encode()
        if len(data) > ENTRY_BYTES:
            return None
        with self._lock:
            if not self._free:
                return None
            index = self._free.pop()
        ctypes.memmove(self._records_at + index * ENTRY_BYTES, data, len(data))
        self._numbers[index * _FIELDS + _LENGTH] = len(data)
        self._numbers[index * _FIELDS + _STATE] = HELD
        return index

    def start(self, index: int, time_limit: float | None, backstop: float = 0.0) -> None:
        """Mark entry ``index`` running, with its hard time limit (None: no limit).

        ``backstop``: extra seconds before the supervisor kills the child for it — for
        tasks the child stops itself at the limit (coroutines, threads), so the kill only
        happens when the child could not (its event loop is blocked)."""
        at = index * _FIELDS
        deadline = 0.0 if time_limit is None else time.monotonic() + time_limit + backstop
        self._numbers[at + _DEADLINE] = deadline
        self._numbers[at + _LIMIT] = time_limit or 0.0
        self._numbers[at + _STATE] = RUNNING

    def finish(self, index: int) -> None:
        """The task of entry ``index`` ran; its message is still held until acknowledged."""
        self._numbers[index * _FIELDS + _STATE] = HELD

    def free(self, index: int) -> None:
        """Entry ``index``'s message is settled (acknowledged, retried, dead-lettered)."""
        self._numbers[index * _FIELDS + _STATE] = FREE
        with self._lock:
            self._free.append(index)

    # -- supervisor side --------------------------------------------------------------

    def busy(self) -> bool:
        """True while the child runs a task (read while it lives)."""
        numbers = self._numbers[:]
        return any(numbers[at + _STATE] == RUNNING for at in range(0, len(numbers), _FIELDS))

    def overdue(self, now: float) -> bool:
        """True when a running task is past its hard deadline."""
        numbers = self._numbers[:]
        for at in range(0, len(numbers), _FIELDS):
            deadline = numbers[at + _DEADLINE]
            if numbers[at + _STATE] == RUNNING and deadline and now > deadline:
                return True
        return False

    def read(self) -> SlotState:
        numbers = self._numbers[:]
        entries = []
        for index in range(self.capacity):
            at = index * _FIELDS
            if numbers[at + _STATE] == FREE:
                continue
            base, length = index * ENTRY_BYTES, int(numbers[at + _LENGTH])
            row = json.loads(bytes(self._records[base : base + length]))
            entries.append(
                SlotEntry(
                    message=BatchEntry(*row),
                    running=numbers[at + _STATE] == RUNNING,
                    deadline=float(numbers[at + _DEADLINE]),
                    time_limit=float(numbers[at + _LIMIT]) or None,
                )
            )
        return SlotState(entries)
