"""A worker child: a direct consumer that reserves batches and runs them.

::

    main thread:      reserve batch ─▶ publish to slot ─▶ for each: start ─▶ run ─▶ finish
                            ▲                                                   │
                            └──── ack(results) in batches, every few ms ◀──────┘
    heartbeat thread: every lease/3: extend the batch's leases; on SIGTERM release the
                      messages not started yet; exit if the supervisor is gone

Results are stored and messages acknowledged together (``Broker.ack``), after the task
ran: a child killed halfway leaves its messages leased, and its supervisor puts them back.
Results that could not be acknowledged (the broker was unreachable) are kept and sent
first once it answers again: if the lease ran out and another worker took the message
meanwhile, the broker refuses the stale ack and the first result stored stands.
The batch size adapts to task duration: fast tasks move in batches of up to
``MAX_BATCH`` per round trip, slow ones one at a time, so no child hoards work another
child could be running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from .. import message as message_codec
from .. import states
from ..app import App
from ..brokers.base import Delivery, ResultRecord
from ..errors import BrokerError
from ..message import Message
from .execution import Outcome, execute, time_limit
from .slot import ChildSlot

__all__ = ["Child"]

logger = logging.getLogger(__name__)

MAX_BATCH = 64
#: a batch should take about this long to run, so slow tasks are not hoarded
BATCH_SECONDS = 0.02
#: results are written at least this often while a batch runs
FLUSH_SECONDS = 0.005
RESERVE_WAIT = 0.5
BROKER_RETRY_MIN = 0.5
BROKER_RETRY_MAX = 1.0  # so a worker resumes within about a second of the broker
PR_SET_PDEATHSIG = 1


class Child:
    """Runs in a forked process: consume until stopped or ``max_tasks`` are done."""

    def __init__(
        self,
        app: App,
        queues: Sequence[str],
        slot: ChildSlot,
        consumer: str,
        max_tasks: int | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.slot = slot
        self.consumer = consumer
        self.max_tasks = max_tasks
        self.parent_pid = parent_pid or os.getppid()
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.done = 0
        self._avg_seconds = 0.0
        self._lock = threading.Lock()
        self._batch: list[Delivery] = []
        self._next = 0
        self._pending_acks: list[Delivery] = []
        self._pending_results: list[ResultRecord] = []
        self._first_pending = 0.0

    # -- process setup ----------------------------------------------------------------

    def run(self) -> int:
        """The child's main: returns its exit code."""
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        # The supervisor forked us with SIGTERM blocked: one sent before the handler
        # above was in place waited, and is delivered to it now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        if os.getppid() != self.parent_pid:
            return 1
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            self._consume()
        finally:
            self.stopping.set()
            self.finished.set()
            heartbeat.join(timeout=5)
            self.app.close()
        return 0

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    # -- consuming --------------------------------------------------------------------

    def _consume(self) -> None:
        broker = self.app.broker
        lease_s = self.app.settings.lease_s
        pause = BROKER_RETRY_MIN
        while not self.stopping.is_set():
            if self.max_tasks is not None and self.done >= self.max_tasks:
                break
            try:
                self.flush()  # results kept from before a broker error go first
                batch = broker.reserve(
                    self.queues, self._batch_size(), lease_s, RESERVE_WAIT, self.consumer
                )
                if batch:
                    self._run_batch(batch)
                pause = BROKER_RETRY_MIN
            except BrokerError as exc:
                # Whatever this batch held stays leased: it comes back when the lease ends.
                logger.error("broker error: %s; trying again in %.1fs", exc, pause)
                self._drop_batch()
                self.stopping.wait(pause)
                pause = min(pause * 2, BROKER_RETRY_MAX)
        _guard("acknowledge finished tasks", self.flush)

    def _drop_batch(self) -> None:
        """Forget the messages not started; keep the results of finished ones, to
        acknowledge once the broker answers (a task that ran is not run again for want
        of its ack, unless its lease ran out meanwhile and another worker took it)."""
        with self._lock:
            self._batch, self._next = [], 0
        self.slot.clear()

    def _batch_size(self) -> int:
        size = 1 if self._avg_seconds <= 0 else int(BATCH_SECONDS / self._avg_seconds)
        if self.max_tasks is not None:
            size = min(size, self.max_tasks - self.done)
        return max(1, min(MAX_BATCH, size))

    def _run_batch(self, batch: list[Delivery]) -> None:
        decoded = [self._decode(d.body) for d in batch]
        names = [m.task if m else "" for m in decoded]
        fits = self.slot.publish(list(zip(batch, names, strict=True)))
        if fits < len(batch):
            self.app.broker.release(batch[fits:])
            batch = batch[:fits]
        finished = self._already_finished(batch)
        with self._lock:
            self._batch, self._next = batch, 0
        while True:
            index = self._claim_next()
            if index is None:
                break
            delivery = self._batch[index]
            if delivery.id in finished:
                self._pending(delivery, None)
                continue
            if self._pending_acks and self._flush_due():
                self.flush()
            self._run_one(index, delivery, decoded[index])
        self.flush()
        self.slot.clear()

    def _claim_next(self) -> int | None:
        if self.stopping.is_set():
            self._release_unstarted()
        with self._lock:
            if self._next >= len(self._batch):
                return None
            self._next += 1
            return self._next - 1

    def _flush_due(self) -> bool:
        """Before the next task: flush if results waited long, or the next may be slow."""
        waited = time.monotonic() - self._first_pending
        return waited >= FLUSH_SECONDS or self._avg_seconds >= FLUSH_SECONDS

    def _already_finished(self, batch: Sequence[Delivery]) -> set[str]:
        """Ids of redelivered messages whose result is stored: ack them, don't rerun."""
        again = [d.id for d in batch if d.deliveries > 1]
        if not again:
            return set()
        found = self.app.broker.fetch_results(again)
        return {k for k, v in found.items() if v.state in states.FINAL_STATES}

    def _run_one(self, index: int, delivery: Delivery, msg: Message | None) -> None:
        task = self.app.tasks.get(msg.task) if msg else None
        self.slot.start(index, time_limit(task, msg))
        started = time.perf_counter()
        outcome = execute(self.app, delivery, msg)
        took = time.perf_counter() - started
        self.slot.finish()
        self.done += 1
        self._avg_seconds = took if not self._avg_seconds else 0.8 * self._avg_seconds + 0.2 * took
        self._apply(delivery, outcome)
        if took > BATCH_SECONDS and self._next < len(self._batch):
            # A slow task in a batch sized for fast ones (the work changed): hand the rest
            # back at once, so idle children take it instead of it waiting behind this one.
            self._release_unstarted()

    def _apply(self, delivery: Delivery, outcome: Outcome) -> None:
        broker = self.app.broker
        if outcome.action == "ack":
            self._pending(delivery, outcome.result)
        elif outcome.action == "retry":
            self.flush()
            broker.retry(delivery, outcome.delay)
        else:
            self.flush()
            broker.dead_letter(delivery, outcome.reason, outcome.result)
            logger.error("message %s dead-lettered: %s", delivery.id, outcome.reason)

    def _pending(self, delivery: Delivery, result: ResultRecord | None) -> None:
        if not self._pending_acks:
            self._first_pending = time.monotonic()
        self._pending_acks.append(delivery)
        if result is not None:
            self._pending_results.append(result)

    def flush(self) -> None:
        """Store pending results and acknowledge their messages, in one broker call."""
        if not self._pending_acks:
            return
        acks, results = self._pending_acks, self._pending_results
        accepted = self.app.broker.ack(acks, results)  # on BrokerError they stay pending
        self._pending_acks, self._pending_results = [], []
        stale = [d.id for d, ok in zip(acks, accepted, strict=True) if not ok]
        if stale:
            logger.warning(
                "stale lease, ack rejected for %d message(s) (another worker holds them, or"
                " an earlier try of this ack already removed them): %s", len(stale), stale,
            )

    # -- heartbeat thread -------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Renew leases until the child is finished: also while it drains, since the
        running task may outlast its lease during the grace period."""
        interval = self.app.settings.lease_s / 3
        last = time.monotonic()
        released = False
        while True:
            event = self.finished if released else self.stopping
            if event.wait(min(interval, 1.0)):
                if released:
                    return
                released = True
                _guard("release prefetched messages", self._release_unstarted)
                continue
            if os.getppid() != self.parent_pid:
                logger.error("supervisor %d is gone; child exiting", self.parent_pid)
                os._exit(1)
            if time.monotonic() - last >= interval:
                last = time.monotonic()
                _guard("renew leases", self._extend_held)

    def _extend_held(self) -> None:
        with self._lock:
            held = self._batch[max(0, self._next - 1) :]
        if held:
            self.app.broker.extend(held, self.app.settings.lease_s)

    def _decode(self, body: bytes) -> Message | None:
        """The message, or None for a bad one (execute then says what is wrong with it)."""
        if len(body) > self.app.settings.max_message_bytes:
            return None
        try:
            return message_codec.decode(body, self.app.serializer)
        except Exception:  # execute() decodes it again and dead-letters it with the reason
            return None

    def _release_unstarted(self) -> None:
        """On shutdown, give back at once the messages this child has not started."""
        with self._lock:
            unstarted = self._batch[self._next :]
            self._batch = self._batch[: self._next]  # what is left is what still runs
        if unstarted:
            self.app.broker.release(unstarted)
            logger.info("released %d prefetched message(s)", len(unstarted))


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies: no orphaned children."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the heartbeat thread's parent check covers it


def _guard(what: str, action: Callable[[], None]) -> None:
    """Run a heartbeat action; a broker outage is logged, never kills the thread."""
    try:
        action()
    except BrokerError as exc:
        logger.error("could not %s: %s", what, exc)
