"""A worker child: a direct consumer that reserves messages and runs them.

::

    main thread:      reserve ─▶ hold in slot ─▶ start each: ─┬─ sync task, prefork: run it here
                         ▲                                    ├─ async task ─▶ event-loop thread
                         │                                    └─ sync task, threads ─▶ task thread
                         └── reserve again while there is room (async limit, free threads)
    results thread:   finished coroutines and thread tasks ─▶ ack(results) in batches, retry,
                      dead letter; a thread task past its hard limit: record it, recycle
    heartbeat thread: every lease/3: extend the leases of everything held; on SIGTERM
                      release the messages not started yet; exit if the supervisor is gone

Results are stored and messages acknowledged together (``Broker.ack``), after the task
ran (:mod:`.holdings`): a child killed halfway leaves its messages leased, and its
supervisor puts them back.
Sync tasks in the default (prefork) pool run on the main thread one at a time, and the
batch size adapts to their duration: fast tasks move in batches of up to ``MAX_BATCH``
per round trip, slow ones one at a time, so no child hoards work another child could be
running. Async tasks run on the child's event loop, up to ``async_limit`` at once; with
``pool="threads"``, sync tasks run on ``threads`` threads. The child reserves as much as
it has room to start, and reserves again while they run.

Hard time limits: a sync task on the main thread is killed with its process by the
supervisor; a coroutine is cancelled at its limit and the child goes on; a thread cannot
be killed, so at its limit the child records the failure, stops taking work, and exits
once its other tasks finish (the supervisor starts a replacement). The supervisor's kill
remains the backstop for coroutines and threads, ``BACKSTOP_S`` past their limit.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from types import FrameType
from typing import Literal

from .. import message as message_codec
from ..app import App
from ..brokers.base import Delivery
from ..errors import BrokerError, TimeLimitExceeded
from ..message import Message
from .execution import Outcome, execute, execute_async, failure, time_limit
from .holdings import Held, Holdings
from .limits import hard_limit_message
from .pools import EventLoopThread, TaskThreads
from .slot import ChildSlot

__all__ = ["POOLS", "Child", "slot_capacity"]

logger = logging.getLogger(__name__)

POOLS = ("prefork", "threads")
MAX_BATCH = 64
#: a batch should take about this long to run, so slow tasks are not hoarded
BATCH_SECONDS = 0.02
RESERVE_WAIT = 0.5
#: with a backlog of tiny tasks, wait this long before reserving again, so the next
#: reservation takes a batch rather than the one or two messages sent meanwhile
LINGER_S = 0.002
#: a backlog: a reservation found at least this many messages (but fewer than it asked
#: for). Not one: a client that waits for each result before sending the next leaves one
#: message per wake-up or linger, and must not keep the worker lingering
BACKLOG_BATCH = 2
#: tasks shorter than this on average are tiny: per-batch costs outweigh them
TINY_TASK_S = 0.001
#: how often a waiting main thread and the results thread look at the clock
TICK = 0.05
#: seconds past a coroutine's or thread's hard limit before the supervisor kills the child
BACKSTOP_S = 2.0
BROKER_RETRY_MIN = 0.5
BROKER_RETRY_MAX = 1.0  # so a worker resumes within about a second of the broker
PR_SET_PDEATHSIG = 1


def slot_capacity(pool: str, threads: int, async_limit: int) -> int:
    """How many messages a child of this pool may hold: what it runs, plus a batch."""
    running = threads if pool == "threads" else 1
    return running + async_limit + MAX_BATCH


#: what the results thread receives: a task that finished (its outcome, None if it has
#: none), "wake" (look at the clock: a new deadline) or "stop"
_Done = tuple[Held, Outcome | None] | Literal["wake", "stop"]


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
        pool: str = "prefork",
        threads: int = 8,
        async_limit: int = 100,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.slot = slot
        self.consumer = consumer
        self.max_tasks = max_tasks
        self.parent_pid = parent_pid or os.getppid()
        self.pool = pool
        self.async_limit = async_limit
        self.stopping = threading.Event()
        self.recycling = threading.Event()
        self.finished = threading.Event()
        self.done = 0
        self._avg_seconds = 0.0
        #: the last reservation found a backlog (see BACKLOG_BATCH): linger before the next
        self._backlog = False
        self.holdings = Holdings(app, slot)
        self._lock = self.holdings.lock  # also guards the running counts below
        self._running_async = 0
        self._running_threads: dict[int, Held] = {}
        #: whether the next reservation may bring async tasks: room on the event loop
        #: counts only then, so a child of a mixed app does not hoard sync tasks
        self._expect_async = any(t.is_async for t in app.tasks.values())
        self._loop = EventLoopThread()
        self._threads = TaskThreads(threads)
        self._done: queue.SimpleQueue[_Done] = queue.SimpleQueue()

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
        results = threading.Thread(target=self._results, name="results", daemon=True)
        heartbeat.start()
        results.start()
        try:
            self._consume()
            self._drain()
        finally:
            self._done.put("stop")
            results.join(timeout=5)
            self.holdings.flush()
            self.stopping.set()
            self.finished.set()
            heartbeat.join(timeout=5)
            self._threads.stop()
            self._loop.stop(timeout=1.0)
            self.app.close()
        return 0

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    # -- consuming --------------------------------------------------------------------

    def _consume(self) -> None:
        pause = BROKER_RETRY_MIN
        while not self._should_stop():
            try:
                self._step()
                pause = BROKER_RETRY_MIN
            except BrokerError as exc:
                # What was reserved and not yet held stays leased: it comes back when
                # the lease ends. What is held runs on.
                logger.error("broker error: %s; trying again in %.1fs", exc, pause)
                self.stopping.wait(pause)
                pause = min(pause * 2, BROKER_RETRY_MAX)

    def _should_stop(self) -> bool:
        if self.stopping.is_set() or self.recycling.is_set():
            return True
        return self.max_tasks is not None and self.done >= self.max_tasks

    def _step(self) -> None:
        """Start what can start; then reserve more if there is room, else wait for it."""
        self._start_waiting()
        size = self._reserve_size()
        if size <= 0 or self._should_stop():
            self.holdings.flush()
            self._wait_for_change()
            return
        if self._backlog and 0 < self._avg_seconds < TINY_TASK_S:
            # results go out first: a client waiting for one must not wait for the linger
            self.holdings.flush()
            if self.stopping.wait(LINGER_S):
                return
        # The results of the tasks run here are stored before the reserve may block.
        lease_s = self.app.settings.lease_s
        batch = self.holdings.flush_and_reserve(
            self.queues, size, lease_s, RESERVE_WAIT, self.consumer
        )
        self._backlog = BACKLOG_BATCH <= len(batch) < size
        if batch:
            self._take(batch)

    def _wait_for_change(self) -> None:
        with self.holdings.changed:
            self.holdings.changed.wait(TICK)

    def _reserve_size(self) -> int:
        """How many messages to reserve: room to start them all at once, 0 while held
        messages still wait to start."""
        with self._lock:
            if self.holdings.waiting:
                return 0
            running = self._running_async + len(self._running_threads)
            async_room = self.async_limit - self._running_async if self._expect_async else 0
            if self.pool == "threads":
                free = self._threads.size - len(self._running_threads)
                sync_room = max(free, self._batch_size()) if free > 0 else 0
            else:
                sync_room = self._batch_size()
            # what waits for its ack is let go of before the reserve (flush_and_reserve)
            held = len(self.holdings) - self.holdings.settling()
            size = min(async_room + sync_room, self.slot.capacity - held)
        if self.max_tasks is not None:
            size = min(size, self.max_tasks - self.done - running)
        return size

    def _batch_size(self) -> int:
        size = 1 if self._avg_seconds <= 0 else int(BATCH_SECONDS / self._avg_seconds)
        return max(1, min(MAX_BATCH, size))

    def _take(self, batch: list[Delivery]) -> None:
        """Hold a reserved batch in the slot; what does not fit goes back at once."""
        finished = self._already_finished(batch)
        refused = []
        saw_async = False
        for delivery in batch:
            msg = self._decode(delivery.body)
            index = self.slot.hold(delivery, msg.task if msg else "")
            if index is None:
                refused.append(delivery)
                continue
            held = Held(index, delivery, msg, self.app.tasks.get(msg.task) if msg else None)
            saw_async = saw_async or held.is_async
            self.holdings.add(held, waiting=delivery.id not in finished)
            if delivery.id in finished:
                self.holdings.ack_later(held, None)
        self._expect_async = saw_async
        if refused:
            self.app.broker.release(refused)

    def _already_finished(self, batch: Sequence[Delivery]) -> set[str]:
        """Ids of redelivered messages whose result is stored: ack them, don't rerun."""
        again = [d.id for d in batch if d.deliveries > 1]
        if not again:
            return set()
        return set(self.app.broker.fetch_results(again, final_only=True))

    # -- starting tasks ---------------------------------------------------------------

    def _start_waiting(self) -> None:
        while not self.stopping.is_set() and not self.recycling.is_set():
            held = self._next_startable()
            if held is None:
                return
            if held.is_async:
                self._start_async(held)
            elif self.pool == "threads":
                self._start_thread(held)
            else:
                self._run_here(held)

    def _next_startable(self) -> Held | None:
        """The first waiting message there is room to start now, counted as running; one
        that starts elsewhere (event loop, thread) before one that would run here and
        keep this thread busy."""
        with self._lock:
            chosen = None
            if self._expect_async or self.pool == "threads":  # else none runs elsewhere
                chosen = next(filter(self._room_elsewhere, self.holdings.waiting), None)
            if chosen is None and self.pool == "prefork":
                chosen = next((h for h in self.holdings.waiting if not h.is_async), None)
            if chosen is None:
                return None
            self.holdings.waiting.remove(chosen)
            if chosen.is_async:
                self._running_async += 1
            elif self.pool == "threads":
                self._running_threads[chosen.index] = chosen
            return chosen

    def _room_elsewhere(self, held: Held) -> bool:
        """Whether ``held`` runs off this thread and has room to start now (lock held)."""
        if held.is_async:
            return self._running_async < self.async_limit
        return self.pool == "threads" and len(self._running_threads) < self._threads.size

    def _run_here(self, held: Held) -> None:
        """A sync task in the prefork pool: on this thread, killed with the process at its
        hard limit, SIGALRM for its soft limit."""
        if self.holdings.flush_due(self._avg_seconds):
            self.holdings.flush()
        self.slot.start(held.index, time_limit(held.task, held.msg))
        started = time.perf_counter()
        outcome = execute(self.app, held.delivery, held.msg)
        took = time.perf_counter() - started
        self.slot.finish(held.index)
        self._avg_seconds = took if not self._avg_seconds else 0.8 * self._avg_seconds + 0.2 * took
        with self._lock:
            self.done += 1
        self.holdings.apply(held, outcome)
        if took > BATCH_SECONDS:
            # A slow task in a batch sized for fast ones (the work changed): hand the rest
            # back at once, so idle children take it instead of it waiting behind this one.
            self.holdings.release_waiting(lambda h: not h.is_async)

    def _start_async(self, held: Held) -> None:
        self.slot.start(held.index, time_limit(held.task, held.msg), BACKSTOP_S)
        future = self._loop.submit(execute_async(self.app, held.delivery, held.msg))
        future.add_done_callback(functools.partial(self._finished_async, held))

    def _finished_async(self, held: Held, future: Future[Outcome]) -> None:
        try:
            outcome: Outcome | None = future.result()
        except BaseException as exc:  # the loop went away under it, or it was cancelled
            logger.error("async task %s stopped without an outcome: %r", held.delivery.id, exc)
            outcome = None
        self._done.put((held, outcome))

    def _start_thread(self, held: Held) -> None:
        held.limit = time_limit(held.task, held.msg)
        self.slot.start(held.index, held.limit, BACKSTOP_S)
        if held.limit is not None:
            held.deadline = time.monotonic() + held.limit
            self._done.put("wake")  # the results thread now watches this deadline
        self._threads.submit(functools.partial(self._run_in_thread, held))

    def _run_in_thread(self, held: Held) -> None:
        outcome: Outcome | None = None
        try:
            outcome = execute(self.app, held.delivery, held.msg)
        except BaseException as exc:  # execute() turns a task's exceptions into outcomes
            logger.error("thread task %s stopped without an outcome: %r", held.delivery.id, exc)
        finally:
            self._done.put((held, outcome))

    # -- results thread ---------------------------------------------------------------

    def _results(self) -> None:
        """Apply the outcomes of coroutines and thread tasks, many per ack; settle thread
        tasks past their hard deadline."""
        while True:
            items = self._collect()
            try:
                for item in items:
                    if isinstance(item, tuple):
                        self._complete(*item)
                self._abandon_overdue()
                self.holdings.flush()
            except Exception:  # never expected; this thread must outlive it all the same
                logger.exception("applying task outcomes failed")
            with self.holdings.changed:
                self.holdings.changed.notify_all()
            if "stop" in items:
                return

    def _collect(self) -> list[_Done]:
        with self._lock:
            watching = any(h.deadline for h in self._running_threads.values())
        timeout = TICK if watching else None
        try:
            items = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < MAX_BATCH * 4:
            try:
                items.append(self._done.get_nowait())
            except queue.Empty:
                break
        return items

    def _complete(self, held: Held, outcome: Outcome | None) -> None:
        with self._lock:
            if held.is_async:
                self._running_async -= 1
            else:
                self._running_threads.pop(held.index, None)
            if held.abandoned:
                return
            self.done += 1
        self.slot.finish(held.index)
        if outcome is None:
            # As if its worker had died running it: delivered again, counted, so a task
            # that always ends this way is dead-lettered instead of looping.
            self.holdings.settle(held, lambda: self.app.broker.requeue(held.delivery))
        else:
            self.holdings.apply(held, outcome)

    def _abandon_overdue(self) -> None:
        """A thread task past its hard limit cannot be stopped: record TimeLimitExceeded
        (or its retry) now, leave the thread running, and recycle this child."""
        now = time.monotonic()
        with self._lock:
            overdue = [
                h
                for h in self._running_threads.values()
                if h.deadline and now > h.deadline and not h.abandoned
            ]
            for held in overdue:
                held.abandoned = True
        for held in overdue:
            assert held.task is not None and held.msg is not None  # it has a time limit
            what = "its thread was abandoned, and its worker process is replaced"
            message = hard_limit_message(held.task.name, held.delivery.id, held.limit, what)
            ttl = self.app.result_ttl(held.task)
            exc = TimeLimitExceeded(message)
            self.slot.finish(held.index)
            self.holdings.apply(held, failure(held.task, held.msg, held.delivery.attempt, exc, ttl))
            logger.error("%s: this child takes no more work and exits", message)
            self.recycling.set()

    # -- stopping ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Give back what has not started; wait for what runs (the supervisor's grace
        bounds the wait after SIGTERM). Abandoned threads are not waited for."""
        self.holdings.release_waiting()
        with self.holdings.changed:
            while self._running_async or any(
                not h.abandoned for h in self._running_threads.values()
            ):
                self.holdings.changed.wait(TICK)
        if self.recycling.is_set():
            logger.info("child recycled after a thread task overran its hard time limit")

    # -- heartbeat thread -------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Renew leases until the child is finished: also while it drains, since running
        tasks may outlast their lease during the grace period."""
        interval = self.app.settings.lease_s / 3
        last = time.monotonic()
        released = False
        while True:
            event = self.finished if released else self.stopping
            if event.wait(min(interval, 1.0)):
                if released:
                    return
                released = True
                self.holdings.release_waiting()
                continue
            if os.getppid() != self.parent_pid:
                logger.error("supervisor %d is gone; child exiting", self.parent_pid)
                os._exit(1)
            if time.monotonic() - last >= interval:
                last = time.monotonic()
                _guard("renew leases", self._extend_held)

    def _extend_held(self) -> None:
        held = self.holdings.deliveries()
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
