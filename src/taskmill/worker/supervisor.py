"""The supervisor: the ``taskmill worker`` process that owns N children.

::

                     ┌──────────────── supervisor (single-threaded) ────────────────┐
    SIGTERM/SIGINT ─▶│ wait(children's sentinels, signal pipe, 0.1 s)               │
                     │  • a child died      → settle its slot, start a replacement  │
                     │  • a task overran    → SIGKILL the child, TimeLimitExceeded  │
                     │  • a child too big   → SIGKILL it, MemoryLimitExceeded (or,   │
                     │                        between tasks, SIGTERM: recycled)     │
                     │  • every 2 s         → heartbeat in the worker registry      │
                     └──────┬────────────────────┬─────────────────────────┬────────┘
                         fork│                fork│                     fork│
                       child 0              child 1        …          child N-1
                 reserve ─▶ run ─▶ ack   (each a direct consumer of the broker)

Each child has a :class:`ChildSlot` in shared memory that says which messages it holds
and which are running (one sync task, or many coroutines and thread tasks). When a child
dies the supervisor settles that slot: each task that was running is put back *counting*
the delivery (after ``max_deliveries`` it is dead-lettered as WorkerLost), and every
other message the child held goes back at once without counting, so a poison message
cannot take its batch-mates down with it. When the supervisor killed the child for a
task past its hard limit, that task fails (TimeLimitExceeded, or a retry by policy) and
the other running tasks go back uncounted: they did nothing wrong.

Shutdown: the first SIGTERM or SIGINT drains — children stop reserving, give back the
messages they have not started and finish the running tasks within ``grace`` seconds; a
second signal (or the grace running out) is a cold stop: children are killed and their
messages given back. Children ask the kernel to kill them if the supervisor dies, so they
never outlive it. The supervisor starts no threads, so forking it is safe.

Being single-threaded, it never waits long on the broker: each of its calls (registry
heartbeat, settling a dead child's slot) gives up after ``BROKER_CALL_S``, so while the
broker is unreachable (a silent network partition) it still replaces children, enforces
time limits and drains on a signal; messages it could not give back return when their
leases end.

Memory (``max_memory_per_child``, MiB): every tick the supervisor reads each child's
resident size from ``/proc/<pid>/statm``. A child over the limit while running a task is
killed, and the task fails with MemoryLimitExceeded (or is retried, if its
``autoretry_for`` says so; when several tasks ran in that child, none can be blamed, and
each is put back counting a delivery); a child over the limit between tasks is asked to
stop (SIGTERM: it gives back what it holds and exits) and is replaced. Only that child is.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from ..app import App
from ..brokers import redact_url
from ..errors import (
    BrokerError,
    ConfigurationError,
    MemoryLimitExceeded,
    TaskFailed,
    TimeLimitExceeded,
)
from ..result import error_record
from ..retries import RetryPolicy
from .child import POOLS, Child, slot_capacity
from .limits import hard_limit_message
from .slot import BatchEntry, ChildSlot, SlotEntry

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

TICK = 0.1
REGISTRY_EVERY = 2.0
REGISTRY_TTL = 10.0
#: a child that dies sooner than this after its start is replaced only after a pause
RESPAWN_PAUSE = 1.0
#: the longest the supervisor waits on one broker call: the loop must keep watching
#: children, time limits and signals while the broker is unreachable
BROKER_CALL_S = 1.0
MIB = 1 << 20
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class _Seat:
    """One child position: its slot outlives the children that sit in it."""

    index: int
    slot: ChildSlot = field(default_factory=ChildSlot)
    process: BaseProcess | None = None
    started: float = 0.0
    respawn_at: float = 0.0
    #: asked to stop (SIGTERM) for being over the memory limit between tasks
    recycling: bool = False


class Supervisor:
    """Runs ``concurrency`` children consuming ``queues`` until told to stop.

    ``pool``: ``"prefork"`` (sync tasks one at a time per child) or ``"threads"`` (up to
    ``threads`` sync tasks at once per child, in threads). In either, a child runs up to
    ``async_limit`` async tasks at once on its event loop.
    """

    def __init__(
        self,
        app: App,
        queues: Sequence[str],
        concurrency: int,
        max_tasks_per_child: int | None = None,
        grace: float = 30.0,
        pool: str = "prefork",
        threads: int = 8,
        async_limit: int = 100,
        max_memory_per_child: int | None = None,
    ) -> None:
        """``max_memory_per_child``: MiB of resident memory a child may use; a limit a
        fresh child would already be over (it starts as big as this process) is refused."""
        _check_memory_limit(max_memory_per_child)
        if pool not in POOLS:
            raise ConfigurationError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if threads < 1 or async_limit < 1:
            raise ConfigurationError("threads and async_limit must be at least 1")
        self.app = app
        self.queues = list(queues)
        self.concurrency = concurrency
        self.max_tasks_per_child = max_tasks_per_child
        self.grace = grace
        self.pool, self.threads, self.async_limit = pool, threads, async_limit
        self.max_memory_per_child = max_memory_per_child
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        capacity = slot_capacity(pool, threads, async_limit)
        self.seats = [_Seat(i, ChildSlot(capacity)) for i in range(concurrency)]
        self._ctx = multiprocessing.get_context("fork")
        self._signals: list[int] = []
        self._draining_since: float | None = None
        self._cold = False
        self._started = time.time()
        self._last_registry = 0.0

    # -- main loop --------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; returns the exit code."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            # Open the broker (and import its client library) before forking, so the
            # children share those pages instead of each loading its own copy. Children
            # open brokers of their own, with the URL's timeouts.
            self.app.broker.limit_call_time(BROKER_CALL_S)
            self._register()
            for seat in self.seats:
                self._spawn(seat)
            self._register()  # now with the children's pids
            logger.info(
                "taskmill worker %s ready: app %s, broker %s, queues %s, %d children (pids %s),"
                " %s",
                self.id,
                self.app.name,
                redact_url(self.app.broker_url),
                ",".join(self.queues),
                self.concurrency,
                " ".join(str(s.process.pid) for s in self.seats if s.process),
                self._pool_description(),
            )
            while self._alive_children() or self._draining_since is None:
                self._tick(wake_r)
        finally:
            self._kill_all()
            signal.set_wakeup_fd(previous)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)
            with contextlib.suppress(BrokerError):
                self.app.broker.unregister_worker(self.id)
            self.app.close()
        logger.info("taskmill worker %s stopped", self.id)
        return 0

    def _pool_description(self) -> str:
        threads = f", {self.threads} threads" if self.pool == "threads" else ""
        return f"pool {self.pool}{threads}, up to {self.async_limit} async tasks per child"

    def _tick(self, wake_r: int) -> None:
        sentinels = [s.process.sentinel for s in self.seats if s.process is not None]
        ready = wait([wake_r, *sentinels], timeout=TICK)
        if wake_r in ready:
            os.read(wake_r, 512)
        self._handle_signals()
        now = time.monotonic()
        for seat in self.seats:
            self._watch(seat, now)
        if self._draining_since is not None and now - self._draining_since > self.grace:
            logger.warning("grace period of %.0fs is over: killing children", self.grace)
            self._cold = True
            self._kill_all()
        if time.monotonic() - self._last_registry >= REGISTRY_EVERY:
            self._register()

    def _watch(self, seat: _Seat, now: float) -> None:
        process = seat.process
        if process is None:
            if self._draining_since is None and now >= seat.respawn_at:
                self._spawn(seat)
            return
        if seat.slot.overdue(now):
            self._kill(process)
            self._settle(seat, "time limit")
        elif not process.is_alive():
            process.join()
            self._settle(seat, "cold stop" if self._cold else "died")
        elif self.max_memory_per_child is not None:
            self._check_memory(seat, process, self.max_memory_per_child)

    def _check_memory(self, seat: _Seat, process: BaseProcess, limit_mib: int) -> None:
        rss = _resident_bytes(process.pid)
        if rss is None or rss <= limit_mib * MIB:
            return
        if seat.slot.busy():
            self._kill(process)
            self._settle(seat, "memory limit", f"{rss / MIB:.0f} MiB")
        elif not seat.recycling and process.pid is not None:
            logger.info(
                "child %s (pid %s) uses %.0f MiB, over the limit of %d MiB: recycling it",
                seat.index,
                process.pid,
                rss / MIB,
                limit_mib,
            )
            seat.recycling = True
            os.kill(process.pid, signal.SIGTERM)

    # -- children ---------------------------------------------------------------------

    def _spawn(self, seat: _Seat) -> None:
        seat.slot.clear()
        seat.recycling = False
        # Objects the garbage collector never visits keep their pages shared with the
        # children: without this, a collection in a child copies most of the heap.
        gc.freeze()
        consumer = f"{self.id}/{seat.index}"
        process = self._ctx.Process(
            target=_child_main,
            args=(
                self.app,
                self.queues,
                seat.slot,
                consumer,
                self.max_tasks_per_child,
                os.getpid(),
                (self.pool, self.threads, self.async_limit),
            ),
            name=f"taskmill-child-{seat.index}",
        )
        # Blocked across the fork, so a SIGTERM that reaches the child before it has its
        # own handler waits for that handler instead of running ours.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        seat.process, seat.started = process, time.monotonic()

    def _settle(self, seat: _Seat, cause: str, detail: str = "") -> None:
        """A child is gone: give back what it held, and record time- or memory-limit
        failures (``detail``: the memory it used)."""
        process = seat.process
        assert process is not None
        seat.process = None
        state = seat.slot.read()
        seat.slot.clear()
        running = state.running()
        if process.exitcode != 0 or running:
            logger.warning(
                "child %s (pid %s) exited with %s (%s)%s",
                seat.index,
                process.pid,
                _exit_description(process.exitcode),
                cause,
                f" while running {_describe(running)}" if running else "",
            )
        try:
            waiting = [e.message.delivery() for e in state.waiting()]
            if waiting:
                self.app.broker.release(waiting)
            now = time.monotonic()
            for entry in running:
                self._settle_running(entry, cause, now, detail if len(running) == 1 else "")
        except BrokerError as exc:
            # The messages stay leased and come back when their leases run out.
            logger.error("broker error while settling child %s: %s", seat.index, exc)
        if time.monotonic() - seat.started < RESPAWN_PAUSE and process.exitcode != 0:
            seat.respawn_at = time.monotonic() + RESPAWN_PAUSE
        process.close()

    def _settle_running(self, entry: SlotEntry, cause: str, now: float, detail: str) -> None:
        """``detail``: the memory the child used, when this task alone ran in it."""
        broker = self.app.broker
        message = entry.message
        if cause == "cold stop":
            broker.release([message.delivery()])
        elif cause == "time limit" and entry.overdue(now):
            killed = "its worker process was killed"
            text = hard_limit_message(message.task, message.id, entry.time_limit, killed)
            self._killed_for(message, TimeLimitExceeded, text)
        elif cause == "time limit":  # killed for another task's overrun: not its fault
            broker.release([message.delivery()])
        elif cause == "memory limit" and detail:
            text = (
                f"task {message.task}[{message.id}] exceeded the worker's memory limit of"
                f" {self.max_memory_per_child} MiB per child (its process used {detail});"
                " its worker process was killed"
            )
            self._killed_for(message, MemoryLimitExceeded, text)
        else:  # died, or over the memory limit with others running: none can be blamed
            broker.requeue(message.delivery())

    def _killed_for(self, entry: BatchEntry, error: type[TaskFailed], message: str) -> None:
        """The child running ``entry`` was killed for ``error``: retry the task if its
        policy says so, else store the failure."""
        task = self.app.tasks.get(entry.task)
        policy = task.options.retry if task else RetryPolicy()
        delay = policy.retry_delay(error(message), entry.attempt)
        broker = self.app.broker
        if delay is not None:
            broker.retry(entry.delivery(), delay)
            return
        ttl = self.app.result_ttl(task)
        broker.ack([entry.delivery()], [error_record(entry.id, error, message, ttl)])
        logger.error("%s", message)

    def _kill(self, process: BaseProcess) -> None:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGKILL)
        process.join()

    def _kill_all(self) -> None:
        for seat in self.seats:
            if seat.process is not None:
                self._kill(seat.process)
                self._settle(seat, "cold stop")

    def _alive_children(self) -> bool:
        return any(s.process is not None for s in self.seats)

    # -- signals ----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            name = signal.Signals(signum).name
            if self._draining_since is None:
                logger.info("%s: draining (a second signal stops at once)", name)
                self._draining_since = time.monotonic()
                for seat in self.seats:
                    if seat.process is not None and seat.process.pid is not None:
                        os.kill(seat.process.pid, signal.SIGTERM)
            else:
                logger.warning("%s again: cold stop", name)
                self._cold = True
                self._kill_all()

    # -- registry ---------------------------------------------------------------------

    def _register(self) -> None:
        self._last_registry = time.monotonic()
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "app": self.app.name,
            "concurrency": self.concurrency,
            "pool": self.pool,
            "queues": self.queues,
            "children": [s.process.pid for s in self.seats if s.process is not None],
            "started_at": self._started,
            "heartbeat_at": time.time(),
        }
        try:
            self.app.broker.register_worker(self.id, json.dumps(info).encode(), REGISTRY_TTL)
        except BrokerError as exc:
            logger.error("broker error in the worker registry heartbeat: %s", exc)


def _check_memory_limit(limit_mib: int | None) -> None:
    """Refuse a limit a new child would already be over: it starts as big as this process."""
    if limit_mib is None:
        return
    own = _resident_bytes(os.getpid()) or 0
    if limit_mib * MIB <= own:
        raise ConfigurationError(
            f"--max-memory-per-child {limit_mib} MiB is below what a new "
            f"worker child uses from its start (about {own / MIB:.0f} MiB)"
        )


def _resident_bytes(pid: int | None) -> int | None:
    """A process's resident set size, from ``/proc/<pid>/statm`` (None: not readable)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _describe(running: list[SlotEntry]) -> str:
    shown = ", ".join(f"{e.message.task}[{e.message.id}]" for e in running[:5])
    return shown + (f" and {len(running) - 5} more" if len(running) > 5 else "")


def _child_main(
    app: App,
    queues: list[str],
    slot: ChildSlot,
    consumer: str,
    max_tasks: int | None,
    parent_pid: int,
    pool: tuple[str, int, int],
) -> None:
    signal.set_wakeup_fd(-1)
    kind, threads, async_limit = pool
    child = Child(app, queues, slot, consumer, max_tasks, parent_pid, kind, threads, async_limit)
    sys.exit(child.run())
