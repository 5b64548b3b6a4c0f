"""Where a child runs the tasks that do not run on its main thread.

::

    child main thread ── run_coroutine_threadsafe ──▶ event-loop thread: async tasks,
                                                       up to --async-limit in flight
                      ── submit ─────────────────────▶ task threads (--pool threads):
                                                       up to --threads sync tasks at once
    each finished task ──▶ its done callback ──▶ the child's results thread (ack, retry)

Both start on first use, so a child that only ever runs sync tasks in the default
(prefork) pool has neither. Task threads are daemon threads: a thread stuck in a task
past its hard time limit cannot be killed, and must not keep its process from exiting
once the child has recorded the failure and decided to be replaced.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["EventLoopThread", "TaskThreads"]

T = TypeVar("T")


class EventLoopThread:
    """The child's own asyncio event loop, running in a thread of its own."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coroutine`` on the loop (started on first use); its future."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="event-loop", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def stop(self, timeout: float) -> None:
        """Stop the loop; close it unless a coroutine blocks it past ``timeout``."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None


class TaskThreads:
    """A fixed number of daemon threads taking calls from one queue."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the next free thread (the threads start on first use)."""
        if not self._threads:
            for number in range(self.size):
                thread = threading.Thread(target=self._serve, name=f"task-{number}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._calls.put(call)

    def stop(self) -> None:
        """Let each idle thread exit; a thread still in a task exits when it returns."""
        for _ in self._threads:
            self._calls.put(None)
        self._threads = []

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call()
