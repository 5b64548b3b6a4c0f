"""The threads behind an :class:`~taskmill.Executor`: a sender and a collector.

::

    caller threads               executor threads                          broker
    submit(fn, *args) ─▶ Future ─┐
    map(fn, iterable) ─▶ feed ───┼─▶ sender:    pickle + sign calls, ──enqueue──▶ queue ─▶ workers
                                 │              many per round trip              │
                                 │              at most max_inflight out          │
                                 └── collector: wait for results (the ◀─results── ┘
                                                oldest first), decode, complete
                                                futures, forget the results

``submit`` only appends to an in-memory queue, so a caller never waits on the broker.
The *sender* takes whatever is queued (and pulls ``map`` input, lazily: never more than
``max_inflight`` messages out at once), encodes it and enqueues it in batches. The
*collector* waits for results of the oldest pending calls (see :mod:`.gather`),
completes their futures, and deletes the results it read, in large batches. A chunk of
``map`` calls is one message; its future's value is every item's outcome.

A future is PENDING (and can be cancelled) while it waits in this process, RUNNING from
the moment its message is sent, then done. The collector also owns the local pool, if
any: it starts it (so the kernel's parent-death signal follows this long-lived thread),
restarts a supervisor that died, declares the executor broken if it dies as it starts
three times running, and stops it and removes its files when all is done.

Neither thread holds a reference to the Executor: when it is garbage collected, or the
interpreter exits (``threading._register_atexit``, as ``concurrent.futures`` uses), the
threads finish what is pending and stop.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from . import message as message_codec
from . import states
from .app import App
from .brokers.base import Outgoing, StoredResult
from .calls import CALL_TASK
from .errors import BrokenExecutor, BrokerError, MessageError, MessageTooLarge
from .gather import Gatherer
from .localpool import LocalPool
from .result import chunk_outcomes, rebuild_error

__all__ = ["MAX_INFLIGHT", "Call", "Dispatcher", "Feed", "at_exit"]

logger = logging.getLogger(__name__)

#: calls sent and not yet finished, per executor: bounds the broker's backlog and what
#: ``cancel_futures`` can still cancel
MAX_INFLIGHT = 2048
#: bytes per enqueue round trip: big chunk messages go out one by one, so the workers
#: start on the first while the next is encoded
BATCH_BYTES = 64 << 10
#: a local supervisor that exits sooner than this after its start, three times running,
#: cannot start: the executor is broken
QUICK_DEATH_S = 5.0
TICK = 0.5
#: results read are deleted this many at a time, or this often
FORGET_BATCH = 1024
FORGET_S = 1.0


class Call:
    """One message's worth of work: a single call, or (``items``) a chunk of calls."""

    __slots__ = ("args", "fn", "future", "items", "kwargs", "singles")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        items: list[Any] | None = None,
        singles: bool = False,
    ) -> None:
        self.future: Future[Any] = Future()
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.items = items
        self.singles = singles


class Feed:
    """The input of one ``map``: pulled by the sender, its futures taken by the consumer."""

    def __init__(
        self, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], chunksize: int
    ):
        self.fn = fn
        self.chunksize = chunksize
        # one iterable, in chunks: its items travel as they are, not as 1-tuples
        self.singles = len(iterables) == 1 and chunksize > 1
        self._calls = iter(iterables[0]) if self.singles else zip(*iterables, strict=False)
        self.futures: deque[Future[Any]] = deque()
        self.cond = threading.Condition()
        self.exhausted = False
        self.error: BaseException | None = None

    def pull(self, count: int) -> list[Call]:
        """Up to ``count`` more messages' worth of calls (sender thread)."""
        pulled: list[Call] = []
        try:
            while len(pulled) < count and not self.exhausted:
                if self.chunksize == 1:
                    pulled.append(Call(self.fn, next(self._calls)))
                    continue
                items = list(itertools.islice(self._calls, self.chunksize))
                if not items:
                    raise StopIteration
                pulled.append(Call(self.fn, items=items, singles=self.singles))
        except StopIteration:
            self.exhausted = True
        except BaseException as exc:  # the caller's iterable raised: they get it in order
            self.error, self.exhausted = exc, True
        with self.cond:
            self.futures.extend(c.future for c in pulled)
            self.cond.notify_all()
        return pulled

    def next_future(self, deadline: float | None) -> Future[Any] | None:
        """The next call's future in input order; None at the end (consumer thread)."""
        with self.cond:
            while not self.futures:
                if self.exhausted:
                    if self.error is not None:
                        raise self.error
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError()
                self.cond.wait(left)
            return self.futures.popleft()

    def cancel(self) -> None:
        """Stop pulling input; cancel what was pulled and not sent."""
        with self.cond:
            self.exhausted = True
            for future in self.futures:
                future.cancel()


class Dispatcher:
    """Everything the executor's threads share; holds no reference to the Executor."""

    def __init__(
        self,
        app: App,
        pool: LocalPool | None,
        queue: str,
        retries: int,
        time_limit: float | None,
        init: tuple[str, Callable[..., object], tuple[Any, ...]] | None,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.pool = pool
        self.queue = queue
        self.retries = retries or None
        self.time_limit = time_limit
        self.init = init
        self.cond = threading.Condition()
        self.calls: deque[Call] = deque()
        self.feeds: list[Feed] = []
        self.inflight: dict[str, Call] = {}
        self.gatherer = Gatherer(app.broker)
        self.shutdown = False
        self.broken: BaseException | None = None
        self.sender_idle = False
        prefix = uuid.uuid4().hex
        self.ids = (f"{prefix}-{n}" for n in itertools.count())
        self._quick_deaths = 0
        self._checked_pool = 0.0
        self._read: list[str] = []
        self._forgot = time.monotonic()
        self.sender = threading.Thread(target=self._send_loop, name="taskmill-executor-sender")
        self.collector = threading.Thread(
            target=self._collect_loop, name="taskmill-executor-collector"
        )

    def start(self) -> None:
        self.sender.start()
        self.collector.start()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def request_shutdown(self, cancel_futures: bool = False) -> None:
        with self.cond:
            self.shutdown = True
            if cancel_futures:
                while self.calls:
                    self.calls.popleft().future.cancel()
                for feed in self.feeds:
                    feed.cancel()
            self.cond.notify_all()

    # -- sender ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._send(batch)
        except BaseException as exc:
            logger.exception("the executor's sender thread failed")
            self.fail(BrokenExecutor(f"the executor's sender thread failed: {exc!r}"))
        finally:
            self.wake()  # the collector may be waiting for the sender to finish

    def _room(self) -> int:
        return self.max_inflight - len(self.inflight)

    def _next_batch(self) -> list[Call] | None:
        with self.cond:
            self.sender_idle = True
            while not ((self.calls or self.feeds) and self._room() > 0):
                if self.broken or (self.shutdown and not self.calls and not self.feeds):
                    return None
                self.cond.wait(TICK)
            self.sender_idle = False
            room = self._room()
            batch = [self.calls.popleft() for _ in range(min(room, len(self.calls)))]
            feeds = list(self.feeds)
        for feed in feeds:
            if len(batch) < room:
                batch += feed.pull(room - len(batch))
            if feed.exhausted:
                with self.cond:
                    self.feeds.remove(feed)
        return batch

    def _send(self, batch: list[Call]) -> None:
        outgoing: list[Outgoing] = []
        sent: dict[str, Call] = {}
        size = 0
        # With nothing in flight the workers are idle: the first message goes out alone,
        # so they start on it while the rest of the batch is encoded.
        alone = not self.inflight
        for call in batch:
            if not call.future.set_running_or_notify_cancel():
                continue
            id = next(self.ids)
            try:
                body = self._encode(id, call)
            except (TypeError, MessageError) as exc:
                call.future.set_exception(exc)
                continue
            outgoing.append(Outgoing(id=id, queue=self.queue, body=body))
            sent[id] = call
            size += len(body)
            if size >= BATCH_BYTES or alone:
                alone = False
                self._enqueue(outgoing, sent)
                outgoing, sent, size = [], {}, 0
        self._enqueue(outgoing, sent)

    def _encode(self, id: str, call: Call) -> bytes:
        if call.items is None:
            msg = message_codec.Message(
                id=id,
                task=CALL_TASK,
                args=(self.init, call.fn, *call.args),
                kwargs=call.kwargs,
                created_at=time.time(),
                retries=self.retries,
                time_limit=self.time_limit,
            )
        else:
            msg = message_codec.Message(
                id=id,
                task=CALL_TASK,
                args=tuple(call.items),
                created_at=time.time(),
                chunk=True,
                singles=call.singles,
                leading=(self.init, call.fn),
                retries=self.retries,
                time_limit=self.time_limit,
            )
        body = message_codec.encode(msg, self.app.serializer)
        limit = self.app.settings.max_message_bytes
        if len(body) > limit:
            raise MessageTooLarge(
                f"the call's message is {len(body):,} bytes, over the limit of {limit:,} (App "
                "setting max_message_bytes); use a smaller chunksize or pass references"
            )
        return body

    def _enqueue(self, outgoing: list[Outgoing], sent: dict[str, Call]) -> None:
        if not outgoing:
            return
        with self.cond:
            self.inflight.update(sent)
        try:
            self.app.broker.enqueue(outgoing)
        except BrokerError as exc:
            with self.cond:
                for id in sent:
                    self.inflight.pop(id, None)
            for call in sent.values():
                call.future.set_exception(exc)
            return
        self.gatherer.add(sent)
        self.wake()

    # -- collector ---------------------------------------------------------------------

    def _collect_loop(self) -> None:
        try:
            if self.pool is not None:
                self.pool.start()
            while self._wait_for_inflight():
                found = self.gatherer.wait(TICK)
                if found:
                    self._complete(found)
                self._check_pool()
            if self.pool is None:
                self._forget(now=True)  # the local pool's database goes as a whole
        except BaseException as exc:
            logger.exception("the executor's collector thread failed")
            self.fail(BrokenExecutor(f"the executor's collector thread failed: {exc!r}"))
        finally:
            self.sender.join()
            if self.pool is not None:
                self.pool.stop()

    def _wait_for_inflight(self) -> bool:
        """Whether there is something to collect (sent, so the gatherer waits for it);
        False once all is done after shutdown."""
        while True:
            with self.cond:
                if len(self.gatherer):
                    return True
                if self.broken or (
                    self.shutdown and not self.inflight and not self.sender.is_alive()
                ):
                    return False
                self.cond.wait(TICK)
                if len(self.gatherer):
                    return True
            self._check_pool()

    def _complete(self, found: dict[str, StoredResult]) -> None:
        with self.cond:
            full = self._room() <= 0
            calls = [(self.inflight.pop(id, None), stored) for id, stored in found.items()]
            if full:
                self.cond.notify_all()  # the sender waits for room (nothing else waits here)
        for call, stored in calls:
            if call is not None:
                self._settle(call, stored)
        self._read += found
        self._forget()

    def _forget(self, now: bool = False) -> None:
        """Delete the results read, in large batches: each is a write the workers' acks
        would otherwise queue behind."""
        due = len(self._read) >= FORGET_BATCH or time.monotonic() - self._forgot >= FORGET_S
        if not self._read or not (now or due):
            return
        read, self._read = self._read, []
        self._forgot = time.monotonic()
        try:
            self.app.broker.forget(read)
        except BrokerError as exc:  # they expire with their TTL anyway
            logger.warning("could not delete %d executor results: %s", len(read), exc)

    def _settle(self, call: Call, stored: StoredResult) -> None:
        serializer = self.app.serializer
        try:
            if call.items is not None:
                call.future.set_result(chunk_outcomes(stored, serializer, len(call.items)))
                return
            assert stored.body is not None
            payload = serializer.loads(stored.body)
        except (MessageError, TypeError) as exc:
            call.future.set_exception(exc)
            return
        if stored.state == states.SUCCESS:
            call.future.set_result(payload["value"])
        else:
            call.future.set_exception(rebuild_error(payload.get("error", {})))

    def _check_pool(self) -> None:
        pool = self.pool
        if pool is None or self.broken or time.monotonic() - self._checked_pool < TICK:
            return
        self._checked_pool = time.monotonic()
        code = pool.exited()
        if code is None:
            return
        quick = time.monotonic() - pool.started_at < QUICK_DEATH_S
        self._quick_deaths = self._quick_deaths + 1 if quick else 0
        if self._quick_deaths >= 3:
            self.fail(
                BrokenExecutor(
                    f"the executor's worker processes exit as they start (exit code {code}); "
                    "their output (stderr) says why"
                )
            )
            return
        logger.warning("the executor's worker supervisor exited (code %s): restarting it", code)
        pool.start()

    def fail(self, exc: BaseException) -> None:
        """Broken: every call not finished fails with ``exc``; no more calls are taken."""
        with self.cond:
            if self.broken is None:
                self.broken = exc
            calls = list(self.calls) + list(self.inflight.values())
            self.calls.clear()
            self.inflight.clear()
            feeds, self.feeds = self.feeds, []
            self.cond.notify_all()
        for feed in feeds:
            feed.cancel()
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc)


def at_exit(dispatcher: weakref.ref[Dispatcher]) -> None:
    """Interpreter exit: let the threads finish what is pending, then stop."""
    found = dispatcher()
    if found is not None:
        found.request_shutdown()
