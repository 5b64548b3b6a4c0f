"""A child's slot: what a worker child is doing, in shared memory its supervisor can read.

The child writes; the supervisor reads only once the child is dead (it died, or the
supervisor killed it at a hard time limit), so the two never race on the bytes::

    child  ── publish(batch) ──▶  [ batch record: id, queue, lease, deliveries, attempt, task ]
           ── start(i, deadline)▶ [ running index, deadline ]     (a few stores per task)
           ── finish() ────────▶  [ running index = -1 ]
    supervisor, on the child's death: read() ──▶ which message was running, which to release

Plain shared memory costs nothing on the hot path: no pipe, no syscall per task.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..brokers.base import Delivery

__all__ = ["BatchEntry", "ChildSlot", "SlotState"]

RECORD_BYTES = 64 * 1024
_RUNNING, _DEADLINE, _LENGTH, _LIMIT = range(4)


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One leased message of a child's batch, enough to release or settle it."""

    id: str
    queue: str
    lease: str
    deliveries: int
    attempt: int
    task: str

    def delivery(self) -> Delivery:
        return Delivery(self.id, self.queue, b"", self.deliveries, self.attempt, self.lease)


@dataclass(frozen=True, slots=True)
class SlotState:
    """What the supervisor reads: the batch, and the index running (or None)."""

    batch: list[BatchEntry]
    running: int | None
    deadline: float
    time_limit: float | None


class ChildSlot:
    """Shared memory for one child, created by the supervisor before the fork."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._numbers: Any = ctx.RawArray("d", 4)
        self._record: Any = ctx.RawArray("c", RECORD_BYTES)
        self.clear()

    def clear(self) -> None:
        self._numbers[_RUNNING] = -1
        self._numbers[_DEADLINE] = 0.0
        self._numbers[_LENGTH] = 0

    # -- child side -------------------------------------------------------------------

    def publish(self, batch: Sequence[tuple[Delivery, str]]) -> int:
        """Record a new batch of (delivery, task name); returns how many entries fit."""
        self._numbers[_LENGTH] = 0
        rows = [[d.id, d.queue, d.lease, d.deliveries, d.attempt, name] for d, name in batch]
        data = json.dumps(rows).encode()
        while len(data) > RECORD_BYTES and rows:
            rows = rows[: len(rows) // 2]
            data = json.dumps(rows).encode()
        self._record[: len(data)] = data
        self._numbers[_LENGTH] = len(data)
        return len(rows)

    def start(self, index: int, time_limit: float | None) -> None:
        """Mark entry ``index`` as running, with its hard time limit (None: no limit)."""
        self._numbers[_DEADLINE] = 0.0 if time_limit is None else time.monotonic() + time_limit
        self._numbers[_LIMIT] = time_limit or 0.0
        self._numbers[_RUNNING] = index

    def finish(self) -> None:
        self._numbers[_RUNNING] = -1

    # -- supervisor side --------------------------------------------------------------

    def busy(self) -> bool:
        """True while the child runs a task (read while it lives: one number)."""
        return bool(self._numbers[_RUNNING] >= 0)

    def overdue(self, now: float) -> bool:
        """True when the running task is past its hard time limit."""
        deadline = self._numbers[_DEADLINE]
        return bool(self._numbers[_RUNNING] >= 0 and deadline and now > deadline)

    def read(self) -> SlotState:
        length = int(self._numbers[_LENGTH])
        rows = json.loads(bytes(self._record[:length])) if length else []
        running = int(self._numbers[_RUNNING])
        return SlotState(
            batch=[BatchEntry(*row) for row in rows],
            running=running if 0 <= running < len(rows) else None,
            deadline=float(self._numbers[_DEADLINE]),
            time_limit=float(self._numbers[_LIMIT]) or None,
        )
