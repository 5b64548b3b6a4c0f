"""The embedded broker: one SQLite file shared by every process on one machine.

::

    client ──enqueue──▶ ┌──────────── broker.db (WAL) ────────────┐ ◀──reserve / ack── worker 1
                        │ messages  results  dead_letters  workers │ ◀──reserve / ack── worker N
    client ◀──fetch──── └──────────────────────────────────────────┘

Schema. ``messages`` holds every message not yet acknowledged. ``seq`` (the rowid) is
the insertion order, so FIFO within a priority is ``ORDER BY priority DESC, seq``.
``available_at`` is the one time that matters for reserving: the ETA (now + ``delay``, 0
when there is none) while the message waits, and the lease expiry while it is leased.
A message is due when ``available_at <= now``; so a message whose worker died becomes
due again when its lease runs out, and ``reserve`` reclaims it with no sweeper. ``lease``
is the current lease token (it stays after the lease expires, until the next reserve
replaces it). ``results`` holds stored results until ``expires_at``; ``dead_letters``
and ``workers`` are what their names say. Expired results and workers are ignored by
reads and purged at most once a minute inside some write transaction.

Concurrency. Each (process, thread) has its own connection: sqlite3 connections must
not be shared across threads mid-transaction, and must never be used in a forked child
(the child would share the parent's file locks and page cache), so a child opens fresh
ones and never touches, nor closes, those it inherited. The database runs in WAL mode,
so readers (``fetch_results``, the idle check in ``reserve``) never block the one
writer, and ``synchronous=NORMAL``, which stays consistent after a crash and may lose
only the last commits after a power cut. Every write is one ``BEGIN IMMEDIATE``
transaction: it takes the write lock up front, so two writers queue on
``busy_timeout`` instead of both reading and then failing to upgrade (SQLITE_BUSY,
which a deferred transaction cannot retry). ``reserve`` leases with a single
``UPDATE ... RETURNING``, so no two consumers can lease the same row.

Enqueueing an id that is already queued does nothing (idempotent enqueue): the message
that was there first stays, with its lease and counts. A message put back (``release``,
``requeue``, ``retry``) keeps its ``seq``: once due, it goes before later messages.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from ..errors import BrokerError, ConfigurationError, DiskFull
from ..states import FINAL_STATES, PENDING, RETRY, STARTED
from .base import (
    Broker,
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    ResultRecord,
    StoredResult,
    Wanted,
)
from .doorbell import MAX_SLEEP, Doorbells

__all__ = ["SQLiteBroker"]

RESERVERS = "reserve"
WAITERS = "result"

_PREFIX: Final = "sqlite:///"
_CHUNK: Final = 500  # ids per IN (...) clause, well under SQLite's variable limit
_SCHEMA_VERSION: Final = 1


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _path_from_url(url: str) -> str:
    """The absolute database path a ``sqlite:///`` URL names."""
    if not url.startswith(_PREFIX):
        raise ConfigurationError(
            f"SQLite broker URL {url!r} must look like sqlite:///relative.db "
            "or sqlite:////absolute/path.db"
        )
    path = url[len(_PREFIX) :]
    if not path or path == ":memory:" or path.startswith("file:"):
        raise ConfigurationError(
            f"SQLite broker URL {url!r} must name a database file: workers in other "
            "processes share the queue through it"
        )
    if "?" in path or "#" in path:
        raise ConfigurationError(f"SQLite broker URL {url!r}: query options are not supported")
    path = os.path.abspath(path)  # a later chdir must not move the database
    if not os.path.isdir(os.path.dirname(path)):
        raise ConfigurationError(
            f"SQLite broker URL {url!r}: directory {os.path.dirname(path)!r} does not exist"
        )
    return path


class SQLiteBroker(Broker):
    """The embedded broker: ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``."""

    BUSY_TIMEOUT_S: Final = 60.0
    PURGE_EVERY_S: Final = 60.0

    DDL: Final = (
        """CREATE TABLE IF NOT EXISTS messages (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL,
            available_at REAL NOT NULL,
            lease TEXT,
            consumer TEXT NOT NULL DEFAULT '',
            deliveries INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 0,
            enqueued_at REAL NOT NULL,
            body BLOB NOT NULL)""",
        # reserve walks one queue in delivery order; available_at is in the index so
        # skipping leased and delayed rows never reads the table
        """CREATE INDEX IF NOT EXISTS messages_order
            ON messages (queue, priority DESC, seq, available_at)""",
        """CREATE TABLE IF NOT EXISTS results (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            body BLOB NOT NULL,
            expires_at REAL NOT NULL)""",
        # for the time the next message of a queue comes due: an idle reserve's wait
        "CREATE INDEX IF NOT EXISTS messages_due ON messages (queue, available_at)",
        "CREATE INDEX IF NOT EXISTS results_expiry ON results (expires_at)",
        """CREATE TABLE IF NOT EXISTS dead_letters (
            id TEXT NOT NULL,
            queue TEXT NOT NULL,
            body BLOB NOT NULL,
            reason TEXT NOT NULL,
            dead_at REAL NOT NULL,
            deliveries INTEGER NOT NULL,
            attempt INTEGER NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS dead_letters_queue ON dead_letters (queue, dead_at)",
        """CREATE TABLE IF NOT EXISTS workers (
            id TEXT PRIMARY KEY,
            info BLOB NOT NULL,
            expires_at REAL NOT NULL)""",
    )

    # The first final result wins; an expired one no longer counts and may be replaced.
    STORE_RESULT: Final = """INSERT INTO results (id, state, body, expires_at)
        VALUES (?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET
            state = excluded.state, body = excluded.body, expires_at = excluded.expires_at
        WHERE results.expires_at <= ?"""

    def __init__(self, url: str) -> None:
        self.url = url
        self._path = _path_from_url(url)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._open: dict[threading.Thread, sqlite3.Connection] = {}
        # A forked child's copies of its parent's connections: never used, never closed
        # (closing would run SQLite's cleanup against locks the parent holds); kept here
        # so garbage collection does not close them either.
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        self._purged_at = 0.0
        self._bells = Doorbells(self._path)
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteBroker({self.url!r})"

    # -- connections ------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use in this process."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._pid != os.getpid():
            self._adopt_fork()
        with self._lock:
            if self._closed:
                raise BrokerError(f"{self!r} is closed")
            conn = self._connect()
            for thread in [t for t in self._open if not t.is_alive()]:
                self._open.pop(thread).close()  # its thread is gone: nobody else uses it
            self._open[threading.current_thread()] = conn
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _adopt_fork(self) -> None:
        # In a forked child only the forking thread survives, and the lock may have been
        # copied while held by a thread that no longer exists: start over with a new one.
        self._lock = threading.Lock()
        self._inherited.extend(self._open.values())
        self._open = {}
        self._pid = os.getpid()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self.BUSY_TIMEOUT_S,
                isolation_level=None,  # explicit transactions only
                check_same_thread=False,  # close() may run on another thread
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        return conn

    def _retry_locked(self, statement: Callable[[], object]) -> None:
        """Run ``statement`` again every 0.1 to 2 ms while the database is locked.

        Switching a new file to WAL reports "locked" at once, without the busy timeout,
        while another process does the same: a worker's children all start together.
        """
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        pause = 0.0001
        while True:
            try:
                statement()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.002)

    def _error(self, exc: sqlite3.Error) -> BrokerError:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
            return DiskFull(
                f"SQLite broker {self._path!r}: the disk is full ({exc}); nothing was "
                "written, and writes succeed again once space is freed"
            )
        return BrokerError(f"SQLite broker {self._path!r}: {exc}")

    def _create_schema(self) -> None:
        with self._transaction() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > _SCHEMA_VERSION:
                raise BrokerError(
                    f"SQLite broker {self._path!r} has schema version {version}, "
                    f"newer than this taskmill's {_SCHEMA_VERSION}"
                )
            for statement in self.DDL:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(
        self, write: bool = True, snapshot: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` to write, a snapshot to read (without
        ``snapshot``, each read statement is a snapshot of its own)."""
        conn = self._conn()
        try:
            if not (write or snapshot):
                yield conn
                return
            if write:
                self._begin_immediate(conn)
            else:
                conn.execute("BEGIN")
            try:
                yield conn
                if write:
                    self._purge_if_due(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying every 0.1 to 2 ms while another writer holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, which
        would put milliseconds on every contended round trip; a write transaction here
        lasts tens of microseconds, so short retries get the lock far sooner. The
        connection's busy timeout is off only while taking the lock.
        """
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            self._retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")

    def _purge_if_due(self, conn: sqlite3.Connection) -> None:
        now = self.now()
        if now - self._purged_at < self.PURGE_EVERY_S:
            return
        self._purged_at = now
        conn.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM workers WHERE expires_at <= ?", (now,))

    def close(self) -> None:
        if self._pid != os.getpid():
            self._adopt_fork()  # what is open belongs to the parent: leave it alone
        with self._lock:
            self._closed = True
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()
        self._bells.close()

    # -- messages ---------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Outgoing]) -> None:
        """Store all ``messages`` atomically; an id already queued is left as it is."""
        if not messages:
            return
        now = self.now()
        rows = [(m.id, m.queue, m.priority, _due(now, m.delay), now, m.body) for m in messages]
        with self._transaction() as conn:
            conn.executemany(
                """INSERT INTO messages (id, queue, priority, available_at, enqueued_at, body)
                VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
                rows,
            )
        if any(m.delay <= 0 for m in messages):
            self._bells.ring(RESERVERS)

    def reserve(
        self,
        queues: Sequence[str],
        max_count: int,
        lease_s: float,
        wait_s: float,
        consumer: str = "",
    ) -> list[Delivery]:
        queues = list(dict.fromkeys(queues))
        if not queues or max_count <= 0:
            return []
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            self._bells.listen(RESERVERS)  # before the look, so no ring is missed
            # A read-only look first: idle consumers must not queue on the write lock.
            next_due = self._next_due(queues)
            if next_due <= 0:
                leased = self._lease(queues, max_count, lease_s, consumer)
                if leased:
                    return leased
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._bells.wait(RESERVERS, min(left, max(next_due, 0.001)))

    def _next_due(self, queues: Sequence[str]) -> float:
        """Seconds until the next message of ``queues`` is due (<= 0: one is due now)."""
        # min() per queue, so each is one index lookup, however long the queue
        per_queue = "SELECT min(available_at) AS due FROM messages WHERE queue = ?"
        sql = f"SELECT min(due) FROM ({' UNION ALL '.join([per_queue] * len(queues))})"
        try:
            (first,) = self._conn().execute(sql, queues).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return float("inf") if first is None else float(first) - self.now()

    def _lease(
        self, queues: Sequence[str], max_count: int, lease_s: float, consumer: str
    ) -> list[Delivery]:
        with self._transaction() as conn:
            return self._lease_in(conn, queues, max_count, lease_s, consumer)

    def _lease_in(
        self,
        conn: sqlite3.Connection,
        queues: Sequence[str],
        max_count: int,
        lease_s: float,
        consumer: str,
    ) -> list[Delivery]:
        # Per queue, the first max_count due rows by index order; then the best of those.
        # One IN (...) over all queues would sort every due row of every queue instead.
        per_queue = (
            "SELECT * FROM (SELECT seq, priority FROM messages WHERE queue = ?"
            " AND available_at <= ? ORDER BY priority DESC, seq LIMIT ?)"
        )
        sql = f"""UPDATE messages
            SET lease = ?, available_at = ?, consumer = ?, deliveries = deliveries + 1
            WHERE seq IN (SELECT seq FROM ({" UNION ALL ".join([per_queue] * len(queues))})
                ORDER BY priority DESC, seq LIMIT ?)
            RETURNING priority, seq, id, queue, body, deliveries, attempt"""
        now, token = self.now(), uuid.uuid4().hex
        params: list[object] = [token, now + lease_s, consumer]
        for queue in queues:
            params += [queue, now, max_count]
        params.append(max_count)
        rows = conn.execute(sql, params).fetchall()
        rows.sort(key=lambda r: (-r[0], r[1]))  # RETURNING order is unspecified
        return [Delivery(id, q, body, n, attempt, token) for _, _, id, q, body, n, attempt in rows]

    def _ack_and_lease(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord], want: Wanted
    ) -> tuple[list[bool], list[Delivery]]:
        """The ack and a first lease in one write transaction (one commit per task when
        tasks are taken one at a time); the reserve's wait, if any, after it."""
        with self._transaction() as conn:
            acked = self._ack_in(conn, deliveries, results)
            leased = self._lease_in(conn, want.queues, want.max_count, want.lease_s, want.consumer)
        if results:
            self._bells.ring(WAITERS)
        if leased or want.wait_s <= 0:
            return acked, leased
        return acked, self.reserve(*want)

    def _per_delivery(self, sql: str, rows: Iterable[Sequence[object]]) -> list[bool]:
        """Run one statement per delivery in one transaction; whether each changed a row."""
        with self._transaction() as conn:
            return [conn.execute(sql, row).rowcount > 0 for row in rows]

    def ack(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()
    ) -> list[bool]:
        if not deliveries and not results:
            return []
        with self._transaction() as conn:
            acked = self._ack_in(conn, deliveries, results)
        if results:
            self._bells.ring(WAITERS)
        return acked

    def _ack_in(
        self,
        conn: sqlite3.Connection,
        deliveries: Sequence[Delivery],
        results: Sequence[ResultRecord],
    ) -> list[bool]:
        now = self.now()
        # executemany and one DELETE per chunk: an ack of a batch costs two statements
        conn.executemany(
            self.STORE_RESULT, [(r.id, r.state, r.body, now + r.ttl, now) for r in results]
        )
        gone: set[tuple[str, str]] = set()
        for start in range(0, len(deliveries), 400):
            chunk = deliveries[start : start + 400]
            pairs = ", ".join(["(?, ?)"] * len(chunk))
            # "id IN" lets SQLite use the id index; the pairs then check each lease
            gone.update(
                conn.execute(
                    f"DELETE FROM messages WHERE id IN ({_marks(len(chunk))})"
                    f" AND (id, lease) IN (VALUES {pairs}) RETURNING id, lease",
                    [d.id for d in chunk] + [v for d in chunk for v in (d.id, d.lease)],
                ).fetchall()
            )
        return [(d.id, d.lease) in gone for d in deliveries]

    def extend(self, deliveries: Sequence[Delivery], lease_s: float) -> list[bool]:
        if not deliveries:
            return []
        until = self.now() + lease_s
        return self._per_delivery(
            "UPDATE messages SET available_at = ? WHERE id = ? AND lease = ?",
            [(until, d.id, d.lease) for d in deliveries],
        )

    def release(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if not deliveries:
            return []
        released = self._per_delivery(
            """UPDATE messages SET lease = NULL, available_at = 0, deliveries = deliveries - 1
            WHERE id = ? AND lease = ?""",
            [(d.id, d.lease) for d in deliveries],
        )
        self._bells.ring(RESERVERS)
        return released

    def requeue(self, delivery: Delivery, delay: float = 0.0) -> bool:
        (done,) = self._per_delivery(
            "UPDATE messages SET lease = NULL, available_at = ? WHERE id = ? AND lease = ?",
            [(_due(self.now(), delay), delivery.id, delivery.lease)],
        )
        self._bells.ring(RESERVERS)
        return done

    def retry(self, delivery: Delivery, delay: float) -> bool:
        (done,) = self._per_delivery(
            """UPDATE messages SET lease = NULL, available_at = ?, deliveries = 0,
                attempt = attempt + 1
            WHERE id = ? AND lease = ?""",
            [(_due(self.now(), delay), delivery.id, delivery.lease)],
        )
        self._bells.ring(RESERVERS)
        return done

    def dead_letter(
        self, delivery: Delivery, reason: str, result: ResultRecord | None = None
    ) -> bool:
        with self._transaction() as conn:
            row = conn.execute(
                """DELETE FROM messages WHERE id = ? AND lease = ?
                RETURNING id, queue, body, deliveries, attempt""",
                (delivery.id, delivery.lease),
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                """INSERT INTO dead_letters (id, queue, body, deliveries, attempt, reason, dead_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (*row, reason, self.now()),
            )
            if result is not None:
                self._store(conn, [result])
        if result is not None:
            self._bells.ring(WAITERS)
        return True

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        where = "" if queue is None else "WHERE queue = ?"
        sql = f"""SELECT id, queue, body, reason, dead_at, deliveries, attempt
            FROM dead_letters {where} ORDER BY dead_at DESC, rowid DESC LIMIT ?"""
        params = (limit,) if queue is None else (queue, limit)
        with self._transaction(write=False) as conn:
            return [DeadLetter(*row) for row in conn.execute(sql, params)]

    # -- results ----------------------------------------------------------------------

    def _store(self, conn: sqlite3.Connection, results: Sequence[ResultRecord]) -> list[bool]:
        now = self.now()
        return [
            conn.execute(self.STORE_RESULT, (r.id, r.state, r.body, now + r.ttl, now)).rowcount > 0
            for r in results
        ]

    def store_results(self, results: Sequence[ResultRecord]) -> list[bool]:
        if not results:
            return []
        with self._transaction() as conn:
            stored = self._store(conn, results)
        self._bells.ring(WAITERS)
        return stored

    def wait_results(self, ids: Collection[str], timeout: float | None) -> dict[str, StoredResult]:
        """Check, then sleep until a result is stored (a doorbell rings), and check again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._bells.listen(WAITERS)  # before the look, so no ring is missed
            final = self.fetch_results(ids, final_only=True)
            if final:
                return final
            left = MAX_SLEEP if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return {}
            self._bells.wait(WAITERS, left)

    def fetch_results(
        self, ids: Collection[str], final_only: bool = False
    ) -> dict[str, StoredResult]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StoredResult] = {}
        now = self.now()
        # One snapshot where messages are read too: an ack between the two reads cannot
        # hide both message and result. A final result, once there, stays.
        with self._transaction(write=False, snapshot=not final_only) as conn:
            for chunk in _chunks(wanted):
                marks = _marks(len(chunk))
                for id, state, body in conn.execute(
                    f"SELECT id, state, body FROM results WHERE id IN ({marks}) AND expires_at > ?",
                    (*chunk, now),
                ):
                    if state in FINAL_STATES or not final_only:
                        found[id] = StoredResult(state, body)
                if final_only:
                    continue
                for id, lease, available_at, attempt in conn.execute(
                    f"SELECT id, lease, available_at, attempt FROM messages WHERE id IN ({marks})",
                    chunk,
                ):
                    if id not in found:
                        found[id] = StoredResult(_derived_state(lease, available_at, attempt, now))
        return found

    def forget(self, ids: Collection[str]) -> None:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return
        with self._transaction() as conn:
            for chunk in _chunks(wanted):
                conn.execute(f"DELETE FROM results WHERE id IN ({_marks(len(chunk))})", chunk)

    def revoke(self, id: str, result: ResultRecord) -> bool:
        with self._transaction() as conn:
            (stored,) = self._store(conn, [result])
            conn.execute(
                "DELETE FROM messages WHERE id = ? AND (lease IS NULL OR available_at <= ?)",
                (id, self.now()),
            )
        if stored:
            self._bells.ring(WAITERS)
        return stored

    # -- control ----------------------------------------------------------------------

    def register_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                """INSERT INTO workers (id, info, expires_at) VALUES (?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET info = excluded.info,
                    expires_at = excluded.expires_at""",
                (worker_id, info, self.now() + ttl),
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def workers(self) -> list[bytes]:
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT info FROM workers WHERE expires_at > ? ORDER BY id", (self.now(),)
            )
            return [info for (info,) in rows]

    def stats(self) -> dict[str, QueueStats]:
        now = self.now()
        counts: dict[str, list[int]] = {}
        with self._transaction(write=False) as conn:
            # an expired lease counts as ready: the next reserve takes it
            for queue, ready, delayed, in_flight in conn.execute(
                """SELECT queue, total(available_at <= :now),
                    total(lease IS NULL AND available_at > :now),
                    total(lease IS NOT NULL AND available_at > :now)
                FROM messages GROUP BY queue""",
                {"now": now},
            ):
                counts[queue] = [int(ready), int(delayed), int(in_flight), 0]
            for queue, dead in conn.execute(
                "SELECT queue, count(*) FROM dead_letters GROUP BY queue"
            ):
                counts.setdefault(queue, [0, 0, 0, 0])[3] = dead
        return {queue: QueueStats(*c) for queue, c in counts.items()}


def _due(now: float, delay: float) -> float:
    """``available_at`` for a message due ``delay`` seconds from ``now`` (0: due at once)."""
    return now + delay if delay > 0 else 0.0


def _derived_state(lease: str | None, available_at: float, attempt: int, now: float) -> str:
    """The state of a message still in the broker: leased now, waiting to retry, or not."""
    if lease is not None and available_at > now:
        return STARTED
    return RETRY if attempt > 0 else PENDING
