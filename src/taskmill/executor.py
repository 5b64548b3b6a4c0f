"""``Executor``: a ``concurrent.futures.Executor`` on taskmill's brokers and workers.

::

    Executor.submit / map ──▶ Dispatcher (sender + collector threads, see .dispatch)
                                  │ enqueue batches          ▲ results
                                  ▼                          │
                     without app=: LocalPool (.localpool)  — a temporary SQLite broker and
                                   a worker tree the executor owns
                     with app=:    that app's broker, served by `taskmill worker` anywhere

Calls are pickled — module-level callables, as with ``ProcessPoolExecutor`` — and signed
(HMAC-SHA256): a worker never unpickles an unsigned or altered message. Everything starts
on first use. Without ``app=`` the workers, the database and its sockets are gone after
``shutdown()``, when the executor is garbage collected, or at interpreter exit.

A worker process killed mid-call (``kill -9``, the OOM killer) is replaced, and the call
is delivered again; after the app's ``max_deliveries`` it fails with ``WorkerLost``. Every
other call goes on. If the local supervisor itself dies it is started again; only if it
cannot start at all does the executor break (``BrokenExecutor``).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from .app import App
from .dispatch import MAX_INFLIGHT, Call, Dispatcher, Feed, at_exit
from .errors import BrokenExecutor, ConfigurationError
from .localpool import LocalPool, bootstrapping
from .task import seconds

__all__ = ["Executor"]


class Executor(concurrent.futures.Executor):
    """Run calls in worker processes: a drop-in for ``ProcessPoolExecutor``.

    ``max_workers``: worker processes to start (default: one per CPU); with ``app=`` the
    workers are the app's, and it is checked but not used. ``app``: send calls to
    this app's broker (it must have ``serializer="pickle"``; its workers run them);
    without it, the executor starts and owns local workers. ``retries``: how many more
    times a call that raised is run (at once). ``time_limit``: seconds a call may run
    before its worker process is killed and it fails with ``TimeLimitExceeded`` (per item
    of a chunk). ``initializer(*initargs)`` runs once in each worker process before its
    first call of this executor. ``queue``: default, the app's default queue.
    ``max_inflight``: at most this many messages sent and not finished at once; calls
    beyond wait in this process (where ``cancel()`` still works).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        app: App | None = None,
        retries: int = 0,
        time_limit: float | timedelta | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        queue: str | None = None,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if max_inflight < 1:
            raise ValueError("max_inflight must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an int >= 0, got {retries!r}")
        limit = seconds(time_limit, "time_limit")
        if limit is not None and limit <= 0:
            raise ConfigurationError(f"time_limit must be > 0, got {time_limit!r}")
        if app is not None and app.settings.serializer != "pickle":
            raise ConfigurationError(
                f"Executor(app={app.name!r}) needs an App made with serializer='pickle' (and "
                "a signing_key on a network broker): calls and their results travel pickled"
            )
        self._max_workers = max_workers or os.cpu_count() or 1
        self._app = app
        self._queue = queue
        self._max_inflight = max_inflight
        self._retries = retries
        self._time_limit = limit
        self._init = None
        if initializer is not None:
            self._init = (uuid.uuid4().hex, initializer, tuple(initargs))
        self._lock = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._shutdown = False

    def _started(self) -> Dispatcher:
        """The dispatcher, started on first use; RuntimeError after shutdown."""
        dispatcher = self._dispatcher
        if dispatcher is not None and not self._shutdown and dispatcher.broken is None:
            return dispatcher
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._dispatcher is None:
                self._dispatcher = self._new_dispatcher()
            if self._dispatcher.broken is not None:
                raise BrokenExecutor(str(self._dispatcher.broken)) from self._dispatcher.broken
            return self._dispatcher

    def _new_dispatcher(self) -> Dispatcher:
        if self._app is None and bootstrapping.get():
            raise RuntimeError(
                "an Executor was started while its worker process was importing your main "
                'module: guard the code that makes Executors with if __name__ == "__main__":'
            )
        pool = None if self._app is not None else LocalPool(self._max_workers)
        app = pool.app if pool is not None else self._app
        assert app is not None
        queue = self._queue or (pool.queue if pool else app.settings.default_queue)
        dispatcher = Dispatcher(
            app, pool, queue, self._retries, self._time_limit, self._init, self._max_inflight
        )
        try:
            # what concurrent.futures itself uses: runs before non-daemon threads are joined
            register: Callable[..., None] = vars(threading)["_register_atexit"]
            register(at_exit, weakref.ref(dispatcher))
        except RuntimeError:
            if pool is not None:
                pool.stop()
            raise RuntimeError("cannot schedule new futures after interpreter shutdown") from None
        weakref.finalize(self, dispatcher.request_shutdown)
        dispatcher.start()
        return dispatcher

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; returns its Future at once."""
        call = Call(fn, args, kwargs)
        dispatcher = self._started()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            dispatcher.calls.append(call)
        if dispatcher.sender_idle:
            dispatcher.wake()
        return call.future

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """``fn`` over the iterables' items, results in order (like the built-in ``map``).

        The input is consumed as the workers take it (at most MAX_INFLIGHT messages
        ahead), not all at once. ``chunksize`` items travel and run per message.
        ``timeout`` (from this call): ``TimeoutError`` from ``__next__`` when a result is
        not ready by then. A call's exception is raised when its result is reached.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        deadline = None if timeout is None else time.monotonic() + timeout
        feed = Feed(fn, iterables, chunksize)
        dispatcher = self._started()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            with dispatcher.cond:
                dispatcher.feeds.append(feed)
                dispatcher.cond.notify_all()
        return _results(feed, deadline)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; with ``wait``, return once every pending call is done and the
        local workers (if any) are stopped and removed. ``cancel_futures``: cancel the
        calls not sent to a worker yet (and stop pulling ``map`` input)."""
        with self._lock:
            self._shutdown = True
            dispatcher = self._dispatcher
        if dispatcher is None:
            return
        dispatcher.request_shutdown(cancel_futures)
        if wait and threading.current_thread() is not dispatcher.collector:
            dispatcher.collector.join()  # (a done callback runs on the collector itself)


def _results(feed: Feed, deadline: float | None) -> Iterator[Any]:
    """The results of a ``map``, in order; cancels the rest if abandoned."""
    try:
        while True:
            future = feed.next_future(deadline)
            if future is None:
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                outcome = future.result(left)
            except TimeoutError:
                future.cancel()
                raise
            if feed.chunksize == 1:
                yield outcome
                continue
            values, failures = outcome
            if not failures:
                yield from values
                continue
            for index, value in enumerate(values):
                if index in failures:
                    raise failures[index]
                yield value
    finally:
        feed.cancel()
