"""The broker contract: what every broker implements, in bytes.

A broker moves opaque message bodies between clients and workers and keeps results.
It never decodes a body: serialization lives above it. Every method is batch-oriented,
so one round trip moves many messages; each docstring states what is atomic.

Life of a message::

    enqueue ──▶ ready ──reserve──▶ leased ──ack(results)──▶ gone (result stored)
                 ▲  ▲                │ │ │
                 │  └──release───────┘ │ └──dead_letter──▶ dead-letter store
                 └──requeue / retry────┘     (lease expired: ready again, reclaimed by reserve)

Every ``reserve`` hands out a fresh lease token. Operations on a delivery
(``ack``, ``extend``, ``release``, ``requeue``, ``retry``, ``dead_letter``) succeed only
while the caller's token is the current one, so a worker that lost its lease (it was too
slow, or cut off) cannot acknowledge or move a message someone else now owns.

``deliveries`` counts how many times a message was handed out since it was enqueued or
last retried: the worker dead-letters a message whose worker died on each of
``max_deliveries`` deliveries. ``attempt`` counts retries the task asked for.

Results: the first *final* result stored for an id wins (SUCCESS, FAILURE, REVOKED), so
a task that ran twice still has exactly one recorded result. ``fetch_results`` also
reports PENDING / STARTED / RETRY for messages still in the broker, and nothing for an
id the broker does not know.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

__all__ = [
    "Broker",
    "DeadLetter",
    "Delivery",
    "Outgoing",
    "QueueStats",
    "ResultRecord",
    "StoredResult",
    "Wanted",
]


class Wanted(NamedTuple):
    """What a consumer asks ``reserve`` for (its arguments, in order)."""

    queues: list[str]
    max_count: int
    lease_s: float
    wait_s: float
    consumer: str = ""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to enqueue, due ``delay`` seconds after the broker stores it.

    The delay is relative so that ETAs follow the broker's clock, never a client's.
    ``priority`` is -255..255, higher first.
    """

    id: str
    queue: str
    body: bytes
    priority: int = 0
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased message, as ``reserve`` hands it out."""

    id: str
    queue: str
    body: bytes
    deliveries: int
    attempt: int
    lease: str


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A result to store: ``state`` is a final state, ``ttl`` in seconds."""

    id: str
    state: str
    body: bytes
    ttl: float


@dataclass(frozen=True, slots=True)
class StoredResult:
    """What the broker knows of an id: a state, and the result body once final."""

    state: str
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Message counts of one queue."""

    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in the dead-letter store, with the reason it is there."""

    id: str
    queue: str
    body: bytes
    reason: str
    dead_at: float
    deliveries: int
    attempt: int


class Broker(ABC):
    """The contract. Implementations are safe to share between threads of one process."""

    #: the URL the broker was opened with, password removed
    url: str = ""
    #: whether ``wait_results`` returns every final result among its ids when it returns
    #: (it looks at them all), rather than the first one handed over
    WAIT_RETURNS_ALL: ClassVar[bool] = True

    # -- messages ---------------------------------------------------------------------

    @abstractmethod
    def enqueue(self, messages: Sequence[Outgoing]) -> None:
        """Store all ``messages`` in one atomic step: all are stored, or none is.

        A message whose id is already queued is ignored (enqueue is idempotent).
        """

    @abstractmethod
    def reserve(
        self,
        queues: Sequence[str],
        max_count: int,
        lease_s: float,
        wait_s: float,
        consumer: str = "",
    ) -> list[Delivery]:
        """Lease up to ``max_count`` due messages from ``queues``.

        Highest priority first, FIFO within a priority, across the given queues.
        Messages whose lease expired are due again (reclaimed here). Blocks up to
        ``wait_s`` for the first message, without busy polling; returns ``[]`` on
        timeout. Each message is leased to one caller only; ``deliveries`` is incremented.
        """

    @abstractmethod
    def ack(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()
    ) -> list[bool]:
        """Store ``results`` (first final result wins), then remove ``deliveries``.

        Atomic: the messages are never gone without their results. Returns, per
        delivery, whether it was acknowledged (False: stale lease, someone else owns
        it now, or already gone). Results are stored even where the ack is stale.
        """

    def ack_and_reserve(
        self,
        deliveries: Sequence[Delivery],
        results: Sequence[ResultRecord],
        queues: Sequence[str],
        max_count: int,
        lease_s: float,
        wait_s: float,
        consumer: str = "",
    ) -> tuple[list[bool], list[Delivery]]:
        """``ack(deliveries, results)``, then ``reserve(queues, …)``: what a consumer does
        between two batches. The ack is done before the reserve may block. Brokers that
        can do both in one round trip override ``_ack_and_lease``."""
        want = Wanted(list(dict.fromkeys(queues)), max_count, lease_s, wait_s, consumer)
        if not (deliveries or results) or not want.queues or max_count <= 0:
            return Broker._ack_and_lease(self, deliveries, results, want)
        return self._ack_and_lease(deliveries, results, want)

    def _ack_and_lease(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord], want: Wanted
    ) -> tuple[list[bool], list[Delivery]]:
        """Both steps of ``ack_and_reserve``, with something to ack and to reserve."""
        accepted = self.ack(deliveries, results)
        return accepted, self.reserve(*want)

    @abstractmethod
    def extend(self, deliveries: Sequence[Delivery], lease_s: float) -> list[bool]:
        """Renew the leases for ``lease_s`` more seconds; False where the lease is stale."""

    @abstractmethod
    def release(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Put messages back at once, not counting this delivery (unstarted prefetch)."""

    @abstractmethod
    def requeue(self, delivery: Delivery, delay: float = 0.0) -> bool:
        """Put a message back, counting this delivery (its worker died running it)."""

    @abstractmethod
    def retry(self, delivery: Delivery, delay: float) -> bool:
        """Back for the next attempt in ``delay`` s: ``attempt`` + 1, ``deliveries`` reset."""

    @abstractmethod
    def dead_letter(
        self, delivery: Delivery, reason: str, result: ResultRecord | None = None
    ) -> bool:
        """Move a leased message to the dead-letter store with ``reason``, and store
        ``result`` (first final result wins), in one atomic step; nothing happens when
        the lease is stale."""

    @abstractmethod
    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, of one queue or all."""

    # -- results ----------------------------------------------------------------------

    @abstractmethod
    def store_results(self, results: Sequence[ResultRecord]) -> list[bool]:
        """Store results; per result, False where a final result was there already."""

    @abstractmethod
    def fetch_results(
        self, ids: Collection[str], final_only: bool = False
    ) -> dict[str, StoredResult]:
        """What the broker knows of each id; ids it does not know are left out.

        ``final_only``: only the ids that have a final result (the others are left out
        too), which spares the broker deriving PENDING, STARTED and RETRY.
        """

    def wait_results(self, ids: Collection[str], timeout: float | None) -> dict[str, StoredResult]:
        """Block until at least one of ``ids`` has a final result, or ``timeout`` passes.

        Returns the final results among ``ids`` (maybe none, on timeout; only the first
        where ``WAIT_RETURNS_ALL`` is False). This base
        version polls ``fetch_results`` with a backoff from 0.5 ms to 50 ms; brokers
        that can block on the server override it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005
        while True:
            final = self.fetch_results(ids, final_only=True)
            if final:
                return final
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return {}
                pause = min(pause, left)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @abstractmethod
    def forget(self, ids: Collection[str]) -> None:
        """Delete stored results."""

    @abstractmethod
    def revoke(self, id: str, result: ResultRecord) -> bool:
        """Revoke a message: store ``result`` (REVOKED) if no final result is there yet,
        and remove the message if no worker holds it. Returns whether ``result`` was stored."""

    # -- control ----------------------------------------------------------------------

    @abstractmethod
    def register_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        """Record (or refresh) a live worker; it disappears ``ttl`` seconds later."""

    @abstractmethod
    def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker from the registry."""

    @abstractmethod
    def workers(self) -> list[bytes]:
        """The info of every live worker."""

    @abstractmethod
    def stats(self) -> dict[str, QueueStats]:
        """Message counts per queue, for every queue holding messages or dead letters."""

    def now(self) -> float:
        """The broker's clock, in Unix seconds: ETAs and leases are measured on it."""
        return time.time()

    def limit_call_time(self, seconds: float) -> None:
        """From now on, give up on a call (``BrokerError``) after about ``seconds``
        without an answer, whatever the URL set: for a process that must stay responsive
        while the broker is unreachable, such as a worker's supervisor. A broker that
        cannot become unreachable (an embedded one) ignores it."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections. The broker must not be used afterwards."""
