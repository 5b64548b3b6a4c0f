"""Sending many calls of one task at once: ``Task.map`` / ``Task.starmap``.

::

    items ─▶ chunks of ``chunksize`` ─▶ one chunk message each ─▶ enqueue, many per round trip
             (automatic when not given)  (split in two while over   (batches of up to
                                          max_message_bytes)         BATCH_BYTES)

One message per chunk keeps the broker's work per item tiny: a worker reserves, runs and
acknowledges a whole chunk at once. Chunks are what the broker sees, so a chunk is
delivered, retried after a worker's death, or revoked as a whole; its items' outcomes
come back together (:func:`taskmill.result.chunk_record`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import message as message_codec
from .brokers.base import Outgoing
from .errors import MessageTooLarge

if TYPE_CHECKING:
    from .task import Task

__all__ = ["auto_chunksize", "send_chunks"]

#: an automatic chunksize aims at this many chunks, so work spreads over many workers
TARGET_CHUNKS = 64
#: and never puts more items than this in one message
MAX_AUTO_CHUNK = 1000
#: bytes of messages per enqueue round trip
BATCH_BYTES = 4 << 20


def auto_chunksize(count: int) -> int:
    """Items per chunk for ``count`` items: about TARGET_CHUNKS chunks, at most
    MAX_AUTO_CHUNK items each, at least one.

    >>> [auto_chunksize(n) for n in (0, 10, 64, 1000, 100_000, 10**7)]
    [1, 1, 1, 16, 1000, 1000]
    """
    return max(1, min(MAX_AUTO_CHUNK, math.ceil(count / TARGET_CHUNKS)))


def send_chunks(
    task: Task[Any, Any],
    calls: Iterable[Any],
    chunksize: int | None,
    queue: str | None = None,
    priority: int | None = None,
    singles: bool = False,
) -> list[tuple[str, int]]:
    """Enqueue ``calls`` (argument lists; with ``singles``, single arguments) as chunk
    messages of ``task``.

    Returns (message id, item count) per chunk, in order. Arguments the format cannot
    carry raise TypeError naming the argument before anything is sent; a broker failure
    halfway leaves the chunks of earlier round trips sent.
    """
    items = list(calls) if singles else [list(args) for args in calls]
    size = auto_chunksize(len(items)) if chunksize is None else chunksize
    if size < 1:
        raise ValueError("chunksize must be >= 1")
    now = time.time()
    bodies: list[tuple[str, bytes, int]] = []
    for start in range(0, len(items), size):
        bodies += _encode(task, items[start : start + size], now, singles)
    queue = queue or task.options.queue
    priority = task.options.priority if priority is None else priority
    batch: list[Outgoing] = []
    batch_bytes = 0
    for id, body, _ in bodies:
        batch.append(Outgoing(id=id, queue=queue, body=body, priority=priority))
        batch_bytes += len(body)
        if batch_bytes >= BATCH_BYTES:
            task.app.broker.enqueue(batch)
            batch, batch_bytes = [], 0
    task.app.broker.enqueue(batch)
    return [(id, count) for id, _, count in bodies]


def _encode(
    task: Task[Any, Any], chunk: list[Any], now: float, singles: bool
) -> list[tuple[str, bytes, int]]:
    """One chunk as (id, body, items), or several if it is over the size limit."""
    msg = message_codec.Message(
        id=message_codec.new_id(),
        task=task.name,
        args=tuple(chunk),
        created_at=now,
        chunk=True,
        singles=singles,
    )
    try:
        body = message_codec.encode(msg, task.app.serializer)
    except (TypeError, ValueError) as exc:
        calls = [[item] for item in chunk] if singles else chunk
        raise TypeError(_explain(task, calls)) from exc
    if len(body) <= task.app.settings.max_message_bytes:
        return [(msg.id, body, len(chunk))]
    if len(chunk) == 1:
        raise MessageTooLarge(
            f"task {task.name}: one call's message is {len(body):,} bytes, over the limit of "
            f"{task.app.settings.max_message_bytes:,} (App setting max_message_bytes); pass a "
            "reference to large data (a path, a key) instead"
        )
    half = len(chunk) // 2
    return _encode(task, chunk[:half], now, singles) + _encode(task, chunk[half:], now, singles)


def _explain(task: Task[Any, Any], chunk: list[list[Any]]) -> str:
    for args in chunk:
        try:
            task.app.serializer.dumps(args)
        except (TypeError, ValueError):
            return task.explain_unencodable(tuple(args), {})
    return f"task {task.name}: the arguments cannot be sent"
