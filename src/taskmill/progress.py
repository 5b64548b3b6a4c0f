"""Progress: a running task says how far it is, a client reads it, and bars are drawn.

::

    worker, inside a task:  update_progress(done, total)
                               │ at most every 0.2 s (and always the last step)
                               ▼
                            broker result "<task id>:progress", state PROGRESS,
                            body {"done": …, "total": …, "at": …}
                               ▲
    client:                 Result.progress ──▶ Progress(done, total)

    client, many results:   ResultSet.get(progress=True) / as_completed(progress=True)
                            ──▶ a rich progress bar: items done / total, rate, ETA

Progress is stored as a result of its own id, beside the task's, because a broker keeps
the *first* result stored for an id: a progress record under the task's own id would
block its final result. Each update replaces the last (``forget`` then
``store_results``: two writes, so updates are throttled). Which task is running is a
context variable the worker sets around each call, so ``update_progress`` needs no
arguments naming it and is a no-op outside a worker (a task called directly).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .brokers.base import Broker, ResultRecord
from .errors import BrokerError, MessageError

if TYPE_CHECKING:
    from .serializers import Serializer

__all__ = [
    "PROGRESS",
    "Bar",
    "Progress",
    "Reporter",
    "current_task",
    "progress_id",
    "read_progress",
    "reporting",
    "update_progress",
]

PROGRESS = "PROGRESS"
#: a task's updates reach the broker at most this often (the last one always does)
MIN_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a task said it is: ``done`` of ``total`` (None: unknown), at Unix ``at``."""

    done: float
    total: float | None = None
    at: float = 0.0

    @property
    def fraction(self) -> float | None:
        """``done / total`` (None when the total is unknown or zero)."""
        return self.done / self.total if self.total else None


def progress_id(task_id: str) -> str:
    """The id under which a task's progress is stored."""
    return f"{task_id}:progress"


class Reporter:
    """Writes one running task's progress to the broker, throttled."""

    __slots__ = ("broker", "id", "last", "serializer", "ttl")

    def __init__(self, broker: Broker, task_id: str, ttl: float, serializer: Serializer) -> None:
        self.broker = broker
        self.id = task_id
        self.ttl = ttl
        self.serializer = serializer
        self.last = 0.0

    def report(self, done: float, total: float | None) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self.last < MIN_INTERVAL:
            return
        self.last = now
        body = self.serializer.dumps({"done": done, "total": total, "at": time.time()})
        id = progress_id(self.id)
        try:
            self.broker.forget([id])
            self.broker.store_results([ResultRecord(id, PROGRESS, body, self.ttl)])
        except BrokerError:
            pass  # progress is advisory: a broker hiccup must not fail the task


current_task: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "taskmill_current_task", default=None
)


@contextlib.contextmanager
def reporting(broker: Broker, task_id: str, ttl: float, serializer: Serializer) -> Iterator[None]:
    """While the worker runs task ``task_id``: where ``update_progress`` writes. (The
    worker sets ``current_task`` itself, without a context manager, on its hot path.)"""
    token = current_task.set(Reporter(broker, task_id, ttl, serializer))
    try:
        yield
    finally:
        current_task.reset(token)


def update_progress(done: float, total: float | None = None) -> None:
    """Report, from inside a task, that ``done`` of ``total`` units of work are done.

    Clients read it as ``Result.progress``. Cheap to call often: it reaches the broker at
    most every 0.2 s, and always when ``done >= total``. Outside a worker it does nothing.
    """
    if isinstance(done, bool) or not isinstance(done, (int, float)):
        raise TypeError(f"done must be a number, not {done!r}")
    if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))):
        raise TypeError(f"total must be a number or None, not {total!r}")
    reporter = current_task.get()
    if reporter is not None:
        reporter.report(done, total)


def read_progress(broker: Broker, task_id: str, serializer: Serializer) -> Progress | None:
    """The progress last stored for ``task_id``, or None."""
    found = broker.fetch_results([progress_id(task_id)]).get(progress_id(task_id))
    if found is None or found.body is None:
        return None
    try:
        payload = serializer.loads(found.body)
        return Progress(float(payload["done"]), _number(payload.get("total")), payload["at"])
    except (MessageError, KeyError, TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class Bar:
    """A rich progress bar of items done, with rate and ETA; ``None``-safe when disabled.

    Drawn on stderr (rich redraws it in place on a terminal, and prints it once at the end
    otherwise).
    """

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self._progress: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task(description, total=total, rate="")
        self._started = time.monotonic()
        self._done = 0

    def __enter__(self) -> Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, count: int) -> None:
        """``count`` more items are done."""
        if self._progress is None or count <= 0:
            return
        self._done += count
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._progress.update(self._task, advance=count, rate=f"{self._done / elapsed:,.0f}/s")
