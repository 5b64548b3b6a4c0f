"""ResultSet: the results of one ``Task.map`` / ``Task.starmap``, item by item.

The calls went out as chunk messages (:mod:`.bulk`); a ResultSet knows each chunk's
message id and item count, waits for chunks with a :class:`~taskmill.gather.Gatherer`
(however many there are, each look at the broker asks about a few), and hands out item
values in input order (``get``) or as their chunks finish (``as_completed``). A chunk's
items succeed or fail one by one; a chunk that fails as a whole (its worker lost, its
time limit, revoked) fails each of its items with that exception.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import errors, states
from .brokers.base import StoredResult
from .errors import ResultTimeout
from .gather import Gatherer
from .progress import Bar
from .result import chunk_outcomes, error_record

if TYPE_CHECKING:
    from .app import App

__all__ = ["ResultSet"]

R = TypeVar("R")

Outcomes = tuple[list[Any], dict[int, BaseException]]


class ResultSet(Generic[R]):
    """Many calls of one task: ``get()`` in order, ``as_completed()``, ``counts()``, …"""

    def __init__(self, app: App, chunks: Sequence[tuple[str, int]], name: str = "") -> None:
        self.app = app
        self.name = name
        self._chunks = list(chunks)
        self._done: dict[str, Outcomes] = {}

    def __repr__(self) -> str:
        return f"<ResultSet {self.name} {len(self)} items in {len(self._chunks)} messages>"

    def __len__(self) -> int:
        return sum(count for _, count in self._chunks)

    @property
    def ids(self) -> list[str]:
        """The ids of the chunk messages, in input order."""
        return [id for id, _ in self._chunks]

    # -- waiting ------------------------------------------------------------------------

    def get(
        self, timeout: float | None = None, propagate: bool = True, progress: bool = False
    ) -> list[R]:
        """Every item's value, in input order, once all are done.

        A failed item's exception is raised (the first in input order); with
        ``propagate=False`` it stands in the list in its place. ``timeout`` (seconds,
        None: for ever): ResultTimeout, a TimeoutError. ``progress``: draw a bar.
        """
        for _ in self._arrivals(timeout, progress):
            pass
        values: list[Any] = []
        for id, count in self._chunks:
            values += self._items(id, count, propagate)
        return values

    def as_completed(
        self, timeout: float | None = None, propagate: bool = True, progress: bool = False
    ) -> Iterator[R]:
        """Item values as their chunks finish (a chunk's items in order).

        A failed item's exception is raised when reached (``propagate=False``: yielded).
        ``timeout`` counts from this call; ResultTimeout when it runs out.
        """
        counts = dict(self._chunks)
        for id in self._arrivals(timeout, progress):
            yield from self._items(id, counts[id], propagate)

    def _arrivals(self, timeout: float | None, progress: bool) -> Iterator[str]:
        """Chunk ids as their results arrive: those already here first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        gatherer = Gatherer(self.app.broker)
        gatherer.add(id for id, _ in self._chunks if id not in self._done)
        counts = dict(self._chunks)
        with Bar(len(self), self.name or "tasks", enabled=progress) as bar:
            bar.advance(sum(counts[id] for id in self._done))
            yield from list(self._done)
            while len(gatherer):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise ResultTimeout(
                        f"{len(gatherer)} of {len(self._chunks)} messages of {self!r} did not "
                        f"finish within {timeout}s"
                    )
                for id, stored in gatherer.wait(left).items():
                    self._record(id, stored, counts[id])
                    bar.advance(counts[id])
                    yield id

    def _record(self, id: str, stored: StoredResult, count: int) -> None:
        try:
            self._done[id] = chunk_outcomes(stored, self.app.serializer, count)
        except (errors.MessageError, TypeError) as exc:
            self._done[id] = ([None] * count, dict.fromkeys(range(count), exc))

    def _items(self, id: str, count: int, propagate: bool) -> list[Any]:
        values, failures = self._done[id]
        if not failures:
            return values
        out = list(values)
        for index, exc in sorted(failures.items()):
            if propagate:
                raise exc
            out[index] = exc
        return out

    # -- looking ------------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """How many items are in each state (SUCCESS, FAILURE, PENDING, STARTED, …)."""
        found = Counter[str]()
        waiting = [(id, count) for id, count in self._chunks if id not in self._done]
        stored = self.app.broker.fetch_results([id for id, _ in waiting]) if waiting else {}
        for id, count in waiting:
            result = stored.get(id)
            if result is not None and result.state in states.FINAL_STATES:
                self._record(id, result, count)
            else:
                found[states.UNKNOWN if result is None else result.state] += count
        for values, failures in self._done.values():
            if failures:
                found[states.FAILURE] += len(failures)
            if len(values) > len(failures):
                found[states.SUCCESS] += len(values) - len(failures)
        return found

    def completed_count(self) -> int:
        """Items finished, successfully or not."""
        counts = self.counts()
        return counts[states.SUCCESS] + counts[states.FAILURE]

    def ready(self) -> bool:
        """True once every item has finished."""
        return self.completed_count() == len(self)

    def successful(self) -> bool:
        """True once every item has finished successfully."""
        return self.counts()[states.SUCCESS] == len(self)

    def failed(self) -> bool:
        """True when some finished item failed."""
        return self.counts()[states.FAILURE] > 0

    # -- acting -------------------------------------------------------------------------

    def revoke(self) -> int:
        """Revoke every chunk that has not started; returns how many items will not run.

        Running chunks are not interrupted (their result is discarded for REVOKED).
        """
        revoked = 0
        ttl = self.app.settings.result_ttl
        for id, count in self._chunks:
            if id in self._done:
                continue
            record = error_record(id, errors.TaskRevoked, "revoked", ttl, states.REVOKED)
            if self.app.broker.revoke(id, record):
                revoked += count
        return revoked

    def forget(self) -> None:
        """Delete the stored results."""
        self._done.clear()
        self.app.broker.forget(self.ids)
