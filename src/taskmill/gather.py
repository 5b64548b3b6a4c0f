"""Waiting for many results at once, without asking the broker about every one each time.

::

    pending ids, oldest first:  a b c d e f g h i j …
                                └─ window ─┘            the oldest WINDOW still pending
    wait(timeout):  broker.wait_results(window)     blocks until one of them is final
                    broker.fetch_results(window)    the others that finished meanwhile, where
                                                    the wait handed over one (Redis)
                    every SWEEP_S: fetch_results over all pending, a window at a time,
                    so a result that finished far out of order is not left waiting

Work runs roughly in the order it was sent, so the oldest pending ids are the ones about
to finish: a window keeps each look at the broker small however many calls are pending,
and a finished id leaves the window at once, letting the next one in. The window adapts
(MIN_WINDOW to WINDOW ids): it doubles while results come in bulk (fast calls, acked in
batches) and halves while they trickle in (slow calls), so a client waiting on slow work
spends next to no CPU on looking. Not a thread: the
caller's loop (``ResultSet.get``, the Executor's collector thread) calls ``wait``; ``add``
and ``discard`` may come from other threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable

from .brokers.base import Broker, StoredResult

__all__ = ["Gatherer"]

WINDOW = 256
MIN_WINDOW = 16
SWEEP_S = 1.0


class Gatherer:
    """The final results of a changing set of pending ids, as they arrive."""

    def __init__(self, broker: Broker, window: int = WINDOW, sweep_s: float = SWEEP_S) -> None:
        self.broker = broker
        self.max_window = window
        self.window = min(window, MIN_WINDOW)
        self.sweep_s = sweep_s
        self._pending: dict[str, None] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ids: Iterable[str]) -> None:
        """Wait for these ids too (after those added before them)."""
        with self._lock:
            self._pending.update(dict.fromkeys(ids))

    def discard(self, ids: Iterable[str]) -> None:
        """Stop waiting for these ids."""
        with self._lock:
            for id in ids:
                self._pending.pop(id, None)

    def _oldest(self, start: int = 0, count: int = 0) -> list[str]:
        with self._lock:
            return list(itertools.islice(self._pending, start, start + (count or self.window)))

    def wait(self, timeout: float | None) -> dict[str, StoredResult]:
        """Final results that arrived (none if ``timeout`` ran out); they are no longer
        pending. Returns at once when nothing is pending."""
        window = self._oldest()
        if not window:
            return {}
        found = self.broker.wait_results(window, timeout)
        if len(found) == 1 and len(window) > 1 and not self.broker.WAIT_RETURNS_ALL:
            # a blocking pop hands over one result: collect the window's others too
            found.update(self._final(window))
        if len(found) * 2 >= len(window):
            self.window = min(self.max_window, self.window * 2)
        elif len(found) * 8 < len(window):
            self.window = max(min(self.max_window, MIN_WINDOW), self.window // 2)
        if time.monotonic() - self._swept >= self.sweep_s:
            found.update(self.sweep())
        self.discard(found)
        return found

    def sweep(self) -> dict[str, StoredResult]:
        """Look at every pending id, a window at a time (the slow path)."""
        self._swept = time.monotonic()
        found: dict[str, StoredResult] = {}
        start = self.window
        while True:
            ids = self._oldest(start, self.max_window)
            if not ids:
                return found
            found.update(self._final(ids))
            start += len(ids)

    def _final(self, ids: list[str]) -> dict[str, StoredResult]:
        return self.broker.fetch_results(ids, final_only=True)
