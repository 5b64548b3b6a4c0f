"""What a worker child holds, and how it lets go of it.

::

    reserve ─▶ Held (slot entry) ─▶ waiting ─▶ running ─▶ outcome ─┬─ ack: pending, sent with
                                       │                           │  others in one Broker.ack
                                       │                           ├─ retry: Broker.retry
                                       │                           └─ dead: Broker.dead_letter
                                       └─ release (shutdown, slow work): Broker.release
    every way out frees the message's slot entry, after the broker call

One :class:`Holdings` per child is shared by its main thread (which reserves, and runs
sync tasks in the prefork pool), its results thread (outcomes of coroutines and thread
tasks) and its heartbeat thread (extends every held lease, releases waiting messages on
SIGTERM), under one lock. A slot entry is freed only once its message is settled with
the broker, so a child killed in between leaves the supervisor something to put back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..app import App
from ..brokers.base import Delivery, ResultRecord
from ..errors import BrokerError
from ..message import Message
from ..task import Task
from .execution import Outcome
from .slot import ChildSlot

__all__ = ["FLUSH_SECONDS", "Held", "Holdings"]

logger = logging.getLogger(__name__)

#: results are written at least this often while fast tasks run on the main thread
FLUSH_SECONDS = 0.005


@dataclass(eq=False, slots=True)
class Held:
    """A message the child holds: waiting, running, or ran with its ack pending."""

    index: int  # its entry in the slot
    delivery: Delivery
    msg: Message | None
    task: Task[Any, Any] | None
    #: a thread task's hard deadline (monotonic; 0: none), and the limit it came from
    deadline: float = 0.0
    limit: float | None = None
    #: a thread task failed at its deadline: its late outcome is dropped
    abandoned: bool = False

    @property
    def is_async(self) -> bool:
        return self.task is not None and self.task.is_async


class Holdings:
    """Every message a child holds, from its reservation to its settlement."""

    def __init__(self, app: App, slot: ChildSlot) -> None:
        self.app = app
        self.slot = slot
        self.lock = threading.Lock()
        #: notified when tasks finish: room to start or reserve more
        self.changed = threading.Condition(self.lock)
        self.waiting: deque[Held] = deque()
        self._held: dict[int, Held] = {}
        self._pending: list[Held] = []
        self._pending_results: list[ResultRecord] = []
        self._first_pending = 0.0

    def __len__(self) -> int:
        return len(self._held)

    def add(self, held: Held, waiting: bool) -> None:
        with self.lock:
            self._held[held.index] = held
            if waiting:
                self.waiting.append(held)

    def deliveries(self) -> list[Delivery]:
        """Every held message's delivery, for the heartbeat to extend."""
        with self.lock:
            return [h.delivery for h in self._held.values()]

    # -- outcomes ---------------------------------------------------------------------

    def apply(self, held: Held, outcome: Outcome) -> None:
        """Act on a task's outcome: acks wait for the next flush, the rest go at once."""
        broker = self.app.broker
        delivery = held.delivery
        if outcome.action == "ack":
            self.ack_later(held, outcome.result)
        elif outcome.action == "retry":
            self.flush()
            self.settle(held, lambda: broker.retry(delivery, outcome.delay))
        else:
            self.flush()
            self.settle(held, lambda: broker.dead_letter(delivery, outcome.reason, outcome.result))
            logger.error("message %s dead-lettered: %s", delivery.id, outcome.reason)

    def settle(self, held: Held, call: Callable[[], object]) -> None:
        """Settle one message with ``call``; on a broker error it stays leased and comes
        back when its lease ends. Either way this child lets go of it."""
        try:
            call()
        except BrokerError as exc:
            logger.error("broker error settling message %s: %s", held.delivery.id, exc)
        self._forget([held])

    def ack_later(self, held: Held, result: ResultRecord | None) -> None:
        with self.lock:
            if not self._pending:
                self._first_pending = time.monotonic()
            self._pending.append(held)
            if result is not None:
                self._pending_results.append(result)

    def flush_due(self, avg_seconds: float) -> bool:
        """Before the next task on the main thread: flush if results waited long, or the
        next task may be slow."""
        if not self._pending:
            return False
        waited = time.monotonic() - self._first_pending
        return waited >= FLUSH_SECONDS or avg_seconds >= FLUSH_SECONDS

    def flush(self) -> None:
        """Store pending results and acknowledge their messages, in one broker call."""
        with self.lock:
            if not self._pending:
                return
            acks, results = self._pending, self._pending_results
            self._pending, self._pending_results = [], []
        try:
            accepted = self.app.broker.ack([h.delivery for h in acks], results)
        except BrokerError as exc:
            logger.error("broker error acknowledging %d message(s): %s", len(acks), exc)
            accepted = [True] * len(acks)  # they come back when their leases end
        finally:
            self._forget(acks)
        stale = [h.delivery.id for h, ok in zip(acks, accepted, strict=True) if not ok]
        if stale:
            logger.warning(
                "stale lease, ack rejected for %d message(s) (another worker holds them, or"
                " an earlier try of this ack already removed them): %s",
                len(stale),
                stale,
            )

    def release_waiting(self, which: Callable[[Held], bool] = lambda held: True) -> None:
        """Give back at once (not counting the delivery) held messages not started."""
        with self.lock:
            given = [h for h in self.waiting if which(h)]
            self.waiting = deque(h for h in self.waiting if not which(h))
        if not given:
            return
        try:
            self.app.broker.release([h.delivery for h in given])
            logger.info("released %d prefetched message(s)", len(given))
        except BrokerError as exc:
            logger.error("broker error releasing prefetched messages: %s", exc)
        self._forget(given)

    def _forget(self, settled: Sequence[Held]) -> None:
        with self.lock:
            for held in settled:
                self._held.pop(held.index, None)
        for held in settled:
            self.slot.free(held.index)
