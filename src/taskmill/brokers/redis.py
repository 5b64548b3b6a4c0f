"""The Redis broker: workers on many machines share queues through one Redis server.

::

    client ──enqueue.lua──▶ ┌──────────── Redis ─────────────┐ ◀──reserve.lua / ack.lua── worker
           ◀─BLPOP w:{id}── │ per queue {q}: ready delayed    │ ◀──extend / putback ─────── worker
                            │  leased msg meta notify waiters │
                            │  dead; results r:{id} w:{id}    │
                            └─────────────────────────────────┘

Every multi-step operation is one Lua script in ``redis_lua/`` (its header documents the
keys it touches) called by one method here, so each is atomic on the server. Every key
carries a hash tag: the queue for queue keys (``prefix:{queue}:ready``), the id for result
keys (``prefix:r:{id}``), ``{workers}`` for the worker registry. Scripts touch only the
keys they are given, so the same scripts run on Redis Cluster, where the client calls
them once per hash slot (:mod:`.redis_cluster`). Times — ETAs and leases — are read from
the server's clock (``TIME``) inside the scripts, never a worker's.

On one server, ``ack`` stores the results and removes the messages in one script call:
one round trip, atomic. The control paths (``stats``, ``revoke``, the states of
``fetch_results``) read the set of queues (``prefix:queues``), then call their script
once per queue, pipelined.

Blocking without polling. An idle ``reserve`` blocks in ``BLPOP`` on the queues'
``notify`` lists, which enqueue fills with one wake-up token; a reserver that leaves
messages behind passes the token on. It wakes at the latest when a delayed message or a
lease comes due (the script returns that hint). A finished task's result is also pushed
onto ``w:<id>``, so ``Result.get`` is one ``BLPOP`` that returns the result itself.

Connections. redis-py with hiredis; a connection that failed or timed out is dropped,
never reused (a late reply would be read as the answer to the next command). Calls that
fail on a lost connection are retried with exponential backoff for up to
``reconnect_s`` seconds (a URL parameter, default 20) before ``BrokerError``; refused
credentials are not retried. On a silent network (packets dropped, no reset) a call
gives up after at most ``reconnect_s`` plus one socket timeout. A blocking wait is cut
into ``BLPOP`` calls of at most half the socket timeout (``socket_timeout=`` in the
URL, default 30 s), so a long wait is never mistaken for a dead server.

URL: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
``unix:///path.sock?db=0``, with ``prefix=`` (default ``taskmill``) naming the key
prefix, so a Redis ACL user limited to ``~prefix:*`` suffices. Redis Cluster:
``redis+cluster://host:port[,host:port...]``, see :mod:`.redis_cluster`.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import BrokerError, ConfigurationError
from ..states import FINAL_STATES
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

__all__ = ["RedisBroker"]


MAX_PRIORITY = 255  # priorities are -255..255: they and a 40-bit seq fit a score
WAITER_TTL_MS = 60_000
QUEUE_KEYS = ("ready", "delayed", "leased", "msg", "meta", "notify", "waiters")
SCRIPTS = (
    "enqueue",
    "reserve",
    "ack",
    "extend",
    "putback",
    "dead_letter",
    "status",
    "stats",
    "revoke",
)
RETRYABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)
#: credentials the server refused: no reconnecting will fix them (both are ConnectionErrors)
REFUSED = (redis.AuthenticationError, redis.exceptions.AuthorizationError)
DEFAULT_SOCKET_TIMEOUT = 30.0
#: a thread's own connection idle this long is checked before use (closed by the server?)
IDLE_CHECK_S = 1.0


#: how many times this process's line was forked: a child never uses a connection made
#: before the fork (the parent's, and its replies)
_forks = [0]


def _forked() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_forked)


class _Own:
    """A thread's own connection. When the thread ends its locals go, and with them
    this holder, which disconnects the connection there and then (left to the garbage
    collector, the socket could be collected before the connection closes it)."""

    __slots__ = ("__weakref__", "conn", "generation", "used_at")

    def __init__(self, conn: Any, generation: tuple[int, int]) -> None:
        self.conn = conn
        self.generation = generation
        self.used_at = time.monotonic()
        weakref.finalize(self, conn.disconnect)


def _token() -> str:
    """A fresh lease token: 128 random bits."""
    return os.urandom(16).hex()


def _script_source(name: str) -> str:
    return resources.files(__package__).joinpath("redis_lua", f"{name}.lua").read_text()


def _parse_url(url: str) -> tuple[str, str, float]:
    """(the URL for redis-py, the key prefix, reconnect seconds)."""
    from . import redact_url

    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    prefix = params.pop("prefix", "taskmill")
    try:
        reconnect_s = float(params.pop("reconnect_s", "20"))
    except ValueError:
        raise ConfigurationError(f"reconnect_s in {redact_url(url)!r} must be a number") from None
    if not prefix or any(c in prefix for c in "{}"):
        raise ConfigurationError(f"bad key prefix {prefix!r}: must be non-empty, without braces")
    query = urlencode(params)
    if parts.scheme == "unix" and not parts.netloc:
        # urlunsplit would write unix:///path.sock as unix:/path.sock, which redis-py
        # refuses
        return f"unix://{parts.path}" + (f"?{query}" if query else ""), prefix, reconnect_s
    return parts._replace(query=query).geturl(), prefix, reconnect_s


class RedisBroker(Broker):
    """The contract on Redis 6.2+ (7 recommended)."""

    #: a blocking pop hands over one result (see ``wait_results``)
    WAIT_RETURNS_ALL = False
    #: the queue keys enqueue.lua gets: on one server no reserver registers in waiters
    _enqueue_kinds: tuple[str, ...] = ("ready", "delayed", "msg", "meta", "notify", "seq")

    def __init__(self, url: str) -> None:
        from . import redact_url

        self.url = redact_url(url)
        #: how long one blocking command (BLPOP) may wait: half the socket timeout, so
        #: that its reply comes before the read times out — a long wait must not look
        #: like a dead server, whatever socket_timeout the URL sets
        self._block_max = DEFAULT_SOCKET_TIMEOUT / 2
        self._redis: Any = self._connect(url)
        self._scripts = {
            name: self._redis.register_script(_script_source(name)) for name in SCRIPTS
        }
        self._known_queues: set[str] = set()
        #: (queue, kinds) -> its keys, made once
        self._keys: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._lock = threading.Lock()
        #: per thread: its own connection (see _own_connection)
        self._own = threading.local()
        self._owned: weakref.WeakSet[Any] = weakref.WeakSet()
        self._generation = 0

    def _connect(self, url: str) -> Any:
        """The redis-py client; sets prefix, reconnect_s and _block_max from the URL."""
        redis_url, self.prefix, self.reconnect_s = _parse_url(url)
        try:
            client = redis.Redis.from_url(
                redis_url,
                socket_timeout=DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout=5,
                health_check_interval=30,
                # _call is the one retry loop, bounded by reconnect_s: redis-py retrying
                # inside it would let one call outlast that window several times over
                # on a silent network (each try waiting out the socket timeout).
                retry=Retry(NoBackoff(), retries=0),
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad Redis URL {self.url!r}: {exc}") from None
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        self._block_max = float(timeout or DEFAULT_SOCKET_TIMEOUT) / 2
        return client

    def __repr__(self) -> str:
        return f"<RedisBroker {self.url} prefix={self.prefix!r}>"

    # -- keys -------------------------------------------------------------------------

    def _qkey(self, queue: str, kind: str) -> str:
        return f"{self.prefix}:{{{queue}}}:{kind}"

    def _queue_keys(self, queue: str, kinds: tuple[str, ...] = QUEUE_KEYS) -> list[str]:
        keys = self._keys.get((queue, kinds))
        if keys is None:
            if "{" in queue or "}" in queue:
                raise ConfigurationError(f"queue name {queue!r} must not contain braces")
            keys = self._keys[queue, kinds] = tuple(self._qkey(queue, k) for k in kinds)
        return list(keys)

    def _result_key(self, id: str) -> str:
        return f"{self.prefix}:r:{{{id}}}"

    def _waiter_key(self, id: str) -> str:
        return f"{self.prefix}:w:{{{id}}}"

    def _waiter_id(self, key: bytes) -> str:
        """The id of a waiter key: ``prefix:w:{<id>}``."""
        return key.decode()[len(self.prefix) + 4 : -1]

    @property
    def _queues_key(self) -> str:
        return f"{self.prefix}:queues"

    def _worker_key(self, worker_id: str) -> str:
        return f"{self.prefix}:{{workers}}:worker:{worker_id}"

    @property
    def _workers_key(self) -> str:
        return f"{self.prefix}:{{workers}}:registry"

    # -- resilience -------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; on a lost connection, retried with backoff for up to
        reconnect_s seconds (the failed connection is dropped, never reused)."""
        deadline = time.monotonic() + self.reconnect_s
        pause = 0.05
        while True:
            try:
                return fn(*args, **kwargs)
            except REFUSED as exc:
                raise BrokerError(f"Redis at {self.url} refused {what}: {exc}") from exc
            except RETRYABLE as exc:
                if time.monotonic() + pause > deadline:
                    raise BrokerError(f"Redis at {self.url} unreachable ({what}): {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            except redis.RedisError as exc:
                raise BrokerError(f"Redis at {self.url} refused {what}: {exc}") from exc

    def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one of the Lua scripts (EVALSHA, loading it first if the server lacks it)."""
        return self._call(name, self._pipelined_scripts, [(name, keys, args)])[0]

    # -- the wire ---------------------------------------------------------------------

    def _own_connection(self) -> Any:
        """This thread's own connection, made with the pool's settings but kept out of it:
        the hot paths skip the pool's bookkeeping and redis-py's command layer, which cost
        a no-op task several times what Redis spends on it. It closes when its thread
        ends (see _Own); a forked process, or a change of timeouts (limit_call_time),
        makes a fresh one."""
        held: _Own | None = getattr(self._own, "held", None)
        generation = (self._generation, _forks[0])
        if held is None or held.generation != generation:
            pool = self._redis.connection_pool
            held = _Own(pool.connection_class(**pool.connection_kwargs), generation)
            with self._lock:
                self._owned.add(held.conn)
            self._own.held = held
        now = time.monotonic()
        if now - held.used_at > IDLE_CHECK_S:
            # As redis-py's pool does before handing out a connection: one the server
            # closed meanwhile (its idle timeout, a proxy, a restart) is made afresh
            # now, rather than failing the command and waiting out a retry pause.
            try:
                if held.conn.can_read():
                    held.conn.disconnect()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                held.conn.disconnect()
        held.used_at = now
        return held.conn

    def _exec(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """``commands`` in one round trip, their raw replies in order; an error reply
        takes its place in the list as its exception. Anything else that goes wrong
        drops the connection, so a late reply never answers a later command. Not
        retried: callers go through ``_call``."""
        conn = self._own_connection()
        try:
            conn.send_packed_command([b"".join(hiredis.pack_command(tuple(c)) for c in commands)])
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            conn.disconnect()
            raise

    # -- messages ---------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Outgoing]) -> None:
        by_queue: dict[str, list[Outgoing]] = {}
        for m in messages:
            if not -MAX_PRIORITY <= m.priority <= MAX_PRIORITY:
                raise ConfigurationError(
                    f"priority must be -{MAX_PRIORITY}..{MAX_PRIORITY}, got {m.priority}"
                )
            by_queue.setdefault(m.queue, []).append(m)
        if not by_queue:
            return
        new = [q for q in by_queue if q not in self._known_queues]
        if new:
            self._call("enqueue", self._redis.sadd, self._queues_key, *new)
            self._known_queues.update(new)
        if len(by_queue) == 1:
            ((queue, batch),) = by_queue.items()
            replies = [self._script("enqueue", *self._enqueue_call(queue, batch))]
        else:
            replies = self._call("enqueue", self._enqueue_many, by_queue)
        # A queue we registered whose counter is new again: the server lost its data
        # (restarted without persistence, flushed). Register it again, or stats, status
        # and revoke, which find queues through P:queues, would not see its messages.
        lost = [q for q, reply in zip(by_queue, replies, strict=True) if reply[1] and q not in new]
        if lost:
            self._call("enqueue", self._redis.sadd, self._queues_key, *lost)
        self._ring([w for reply in replies for w in reply[2:]])

    def _enqueue_many(self, by_queue: dict[str, list[Outgoing]]) -> list[Any]:
        """The enqueue script per queue, in one transaction: all queues or none."""
        pipe = self._redis.pipeline(transaction=True)
        for queue, batch in by_queue.items():
            self._scripts["enqueue"](*self._enqueue_call(queue, batch), client=pipe)
        return list(pipe.execute())

    def _ring(self, waiters: Sequence[bytes]) -> None:
        """Push a wake-up token onto each wake-up list an enqueue or put-back returned
        (only reservers blocked on several queues of a cluster register one)."""
        if not waiters:
            return

        def ring(pipe: Any) -> None:
            for waiter in dict.fromkeys(waiters):
                pipe.lpush(waiter, 1)
                pipe.pexpire(waiter, WAITER_TTL_MS)

        self._call("ring", self._pipelined, ring)

    def _enqueue_call(self, queue: str, batch: Sequence[Outgoing]) -> tuple[list[str], list[Any]]:
        keys = self._queue_keys(queue, self._enqueue_kinds)
        args: list[Any] = [len(batch)]
        for m in batch:
            args += [m.id, m.priority, m.delay, m.body]
        return keys, args

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
        token = _token()
        keys = [k for q in queues for k in self._queue_keys(q)]
        reply = self._script("reserve", keys, [max_count, lease_s, token])
        return self._reserve_rest(Wanted(queues, max_count, lease_s, wait_s), keys, reply, token)

    def _ack_and_lease(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord], want: Wanted
    ) -> tuple[list[bool], list[Delivery]]:
        """The ack script and a first, non-blocking reserve in one round trip."""
        token = _token()
        keys = [k for q in want.queues for k in self._queue_keys(q)]
        ack_keys, ack_args = self._ack_call(deliveries, results)
        reserve_args = [want.max_count, want.lease_s, token]
        calls = [("ack", ack_keys, ack_args), ("reserve", keys, reserve_args)]
        acked, reply = self._call("ack", self._pipelined_scripts, calls)
        reserved = self._reserve_rest(want, keys, reply, token)
        return [bool(x) for x in acked], reserved

    def _pipelined_scripts(self, calls: Sequence[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Several scripts in one round trip, in order. A script the server lacks (it
        restarted) did nothing there, so it is loaded and run again by itself."""
        replies = self._exec(
            [
                ("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)
                for name, keys, args in calls
            ]
        )
        for i, (reply, (name, keys, args)) in enumerate(zip(replies, calls, strict=True)):
            if isinstance(reply, redis.exceptions.NoScriptError):
                replies[i] = self._scripts[name](keys, args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def _reserve_rest(
        self, want: Wanted, keys: list[str], reply: Any, token: str
    ) -> list[Delivery]:
        """After a first reserve came back empty: block for a wake-up, up to ``wait_s``."""
        queues, max_count, lease_s, wait_s, _ = want
        notify = [self._qkey(q, "notify") for q in queues]
        deadline = time.monotonic() + max(wait_s, 0.0)
        while len(reply) <= 1:
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            hint = float(reply[0])
            block = min(left if hint < 0 else min(left, max(hint, 0.001)), self._block_max)
            token = _token()
            reply = self._call(
                "reserve", self._wait_and_reserve, notify, block, keys, [max_count, lease_s, token]
            )
        return _deliveries(queues, reply, token)

    def _wait_and_reserve(
        self, notify: list[str], block: float, keys: list[str], args: list[Any]
    ) -> Any:
        """BLPOP for a wake-up, then the reserve script, in one round trip: the server runs
        the script the moment the BLPOP returns."""
        script = self._scripts["reserve"]
        popped, reply = self._exec(
            [("BLPOP", *notify, block), ("EVALSHA", script.sha, len(keys), *keys, *args)]
        )
        if isinstance(reply, redis.exceptions.NoScriptError):
            return script(keys, args)  # the server lost its scripts (a restart): reload
        for r in (popped, reply):
            if isinstance(r, Exception):
                raise r
        return reply

    def ack(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()
    ) -> list[bool]:
        if not deliveries and not results:
            return []
        reply = self._script("ack", *self._ack_call(deliveries, results))
        return [bool(x) for x in reply]

    def _ack_call(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord]
    ) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [len(results), 0]
        for r in results:
            keys += [self._result_key(r.id), self._waiter_key(r.id)]
            args += [_result_value(r), max(1, int(r.ttl * 1000))]
        groups = self._groups(deliveries, ("ready", "delayed", "leased", "msg", "meta"), keys)
        args[1] = len(groups)
        for d in deliveries:
            args += [groups[d.queue], d.id, d.lease]
        return keys, args

    def _groups(
        self, deliveries: Sequence[Delivery], kinds: tuple[str, ...], keys: list[str]
    ) -> dict[str, int]:
        """Append each distinct queue's keys to ``keys``; its 1-based group index."""
        groups: dict[str, int] = {}
        for d in deliveries:
            if d.queue not in groups:
                groups[d.queue] = len(groups) + 1
                keys += self._queue_keys(d.queue, kinds)
        return groups

    def extend(self, deliveries: Sequence[Delivery], lease_s: float) -> list[bool]:
        if not deliveries:
            return []
        keys: list[str] = []
        groups = self._groups(deliveries, ("ready", "leased", "meta"), keys)
        args: list[Any] = [lease_s]
        for d in deliveries:
            args += [groups[d.queue], d.id, d.lease]
        return [bool(x) for x in self._script("extend", keys, args)]

    def _putback(self, mode: str, deliveries: Sequence[Delivery], delay: float) -> list[bool]:
        if not deliveries:
            return []
        keys: list[str] = []
        kinds = ("ready", "delayed", "leased", "meta", "notify", "waiters")
        groups = self._groups(deliveries, kinds, keys)
        args: list[Any] = [mode, delay]
        for d in deliveries:
            args += [groups[d.queue], d.id, d.lease]
        reply = self._script("putback", keys, args)
        self._ring(reply[len(deliveries) :])
        return [bool(x) for x in reply[: len(deliveries)]]

    def release(self, deliveries: Sequence[Delivery]) -> list[bool]:
        return self._putback("release", deliveries, 0.0)

    def requeue(self, delivery: Delivery, delay: float = 0.0) -> bool:
        return self._putback("requeue", [delivery], delay)[0]

    def retry(self, delivery: Delivery, delay: float) -> bool:
        return self._putback("retry", [delivery], delay)[0]

    def dead_letter(
        self, delivery: Delivery, reason: str, result: ResultRecord | None = None
    ) -> bool:
        keys = self._queue_keys(
            delivery.queue,
            ("ready", "delayed", "leased", "msg", "meta", "dead", "deadmsg", "deadinfo"),
        )
        keys += [self._result_key(delivery.id), self._waiter_key(delivery.id)]
        args: list[Any] = [delivery.id, delivery.lease, reason]
        if result is not None:
            args += [_result_value(result), max(1, int(result.ttl * 1000))]
        return bool(self._script("dead_letter", keys, args))

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        queues = [queue] if queue else self._all_queues()
        found: list[DeadLetter] = []
        for q in queues:
            dead, bodies, infos = self._queue_keys(q, ("dead", "deadmsg", "deadinfo"))
            ids = [
                i.decode()
                for i in self._call("dead_letters", self._redis.zrevrange, dead, 0, limit - 1)
            ]
            if not ids:
                continue

            def read(
                pipe: Any, ids: list[str] = ids, bodies: str = bodies, infos: str = infos
            ) -> None:
                pipe.hmget(bodies, ids)
                pipe.hmget(infos, ids)

            body_list, info_list = self._call("dead_letters", self._pipelined, read)
            for id, body, info in zip(ids, body_list, info_list, strict=True):
                dead_at, deliveries, attempt, reason = (info or b"0|0|0|").decode().split("|", 3)
                found.append(
                    DeadLetter(
                        id, q, body or b"", reason, float(dead_at), int(deliveries), int(attempt)
                    )
                )
        found.sort(key=lambda d: d.dead_at, reverse=True)
        return found[:limit]

    def _all_queues(self) -> list[str]:
        members = self._call("queues", self._redis.smembers, self._queues_key)
        return sorted(q.decode() for q in members)

    def _per_queue(
        self, name: str, kinds: tuple[str, ...], args: Sequence[Any]
    ) -> list[tuple[str, Any]]:
        """A control script once per known queue (each queue is one hash slot), in one
        pipeline: (queue, reply) pairs."""
        queues = self._all_queues()
        calls = [(name, self._queue_keys(q, kinds), list(args)) for q in queues]
        replies = self._call(name, self._pipelined_scripts, calls) if calls else []
        return list(zip(queues, replies, strict=True))

    # -- results ----------------------------------------------------------------------

    def store_results(self, results: Sequence[ResultRecord]) -> list[bool]:
        if not results:
            return []

        def store(pipe: Any) -> None:
            for r in results:
                pipe.set(
                    self._result_key(r.id), _result_value(r), px=max(1, int(r.ttl * 1000)), nx=True
                )

        stored = self._call("store_results", self._pipelined, store)
        fresh = [r for r, ok in zip(results, stored, strict=True) if ok]

        def notify(pipe: Any) -> None:
            for r in fresh:
                waiter = self._waiter_key(r.id)
                pipe.delete(waiter)
                pipe.rpush(waiter, _result_value(r))
                pipe.pexpire(waiter, WAITER_TTL_MS)

        if fresh:
            self._call("store_results", self._pipelined, notify)
        return [bool(ok) for ok in stored]

    def _pipelined(self, build: Callable[[Any], None]) -> list[Any]:
        """Run what ``build`` queues in one round trip; built afresh on every try."""
        pipe = self._redis.pipeline(transaction=False)
        build(pipe)
        return list(pipe.execute())

    def fetch_results(
        self, ids: Collection[str], final_only: bool = False
    ) -> dict[str, StoredResult]:
        ids = list(ids)
        if not ids:
            return {}
        values = self._get_many([self._result_key(i) for i in ids])
        found = {i: _parse_result(v) for i, v in zip(ids, values, strict=True) if v is not None}
        if final_only:
            return {i: r for i, r in found.items() if r.state in FINAL_STATES}
        missing = [i for i in ids if i not in found]
        if missing:
            for _, states in self._per_queue("status", ("meta", "leased"), missing):
                for id, state in zip(missing, states, strict=True):
                    if state and id not in found:
                        found[id] = StoredResult(state.decode())
        return found

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        return list(self._call("fetch_results", self._exec_one, "MGET", *keys))

    def _exec_one(self, *command: Any) -> Any:
        (reply,) = self._exec([command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    def wait_results(self, ids: Collection[str], timeout: float | None) -> dict[str, StoredResult]:
        """One BLPOP on the ids' waiter lists returns a result the moment it is stored."""
        ids = list(ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiters = [self._waiter_key(i) for i in ids]
        block = 0.01
        while True:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left > 0:
                chunk = min(left, block, self._block_max)
                popped = self._call("wait_results", self._exec_one, "BLPOP", *waiters, chunk)
                if popped is not None:
                    key, value = popped
                    return {self._waiter_id(key): _parse_result(value)}
            # Nothing pushed: the result may be older than its waiter list, or another
            # client popped it. The stored result settles it.
            final = self.fetch_results(ids, final_only=True)
            if final or (deadline is not None and time.monotonic() >= deadline):
                return final
            block = min(block * 4, 1.0)

    def forget(self, ids: Collection[str]) -> None:
        keys = [k for i in ids for k in (self._result_key(i), self._waiter_key(i))]
        if keys:
            self._call("forget", self._redis.delete, *keys)

    def revoke(self, id: str, result: ResultRecord) -> bool:
        """The REVOKED result first, then the message out of whichever queue holds it,
        unless leased: a worker that takes it in between runs it, and its result loses
        to REVOKED (the first final result wins)."""
        if not self.store_results([result])[0]:
            return False
        self._per_queue("revoke", ("ready", "delayed", "leased", "msg", "meta"), [id])
        return True

    # -- control ----------------------------------------------------------------------

    def register_worker(self, worker_id: str, info: bytes, ttl: float) -> None:
        def send() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._worker_key(worker_id), info, px=int(ttl * 1000))
            pipe.zadd(self._workers_key, {worker_id: time.time() + ttl})
            pipe.execute()

        self._call("register_worker", send)

    def unregister_worker(self, worker_id: str) -> None:
        def send() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._worker_key(worker_id))
            pipe.zrem(self._workers_key, worker_id)
            pipe.execute()

        self._call("unregister_worker", send)

    def workers(self) -> list[bytes]:
        key = self._workers_key
        ids = self._call("workers", self._redis.zrange, key, 0, -1)
        if not ids:
            return []
        infos = self._get_many([self._worker_key(i.decode()) for i in ids])
        gone = [i for i, info in zip(ids, infos, strict=True) if info is None]
        if gone:
            self._call("workers", self._redis.zrem, key, *gone)
        return [info for info in infos if info is not None]

    def stats(self) -> dict[str, QueueStats]:
        kinds = ("ready", "delayed", "leased", "dead")
        return {
            q: QueueStats(*(int(x) for x in counts))
            for q, counts in self._per_queue("stats", kinds, [])
            if any(int(x) for x in counts)
        }

    def now(self) -> float:
        seconds, micros = self._call("now", self._redis.time)
        return float(seconds) + float(micros) / 1e6

    def limit_call_time(self, seconds: float) -> None:
        self.reconnect_s = min(self.reconnect_s, seconds)
        pool = self._redis.connection_pool
        for name in ("socket_timeout", "socket_connect_timeout"):
            current = pool.connection_kwargs.get(name)
            pool.connection_kwargs[name] = seconds if current is None else min(current, seconds)
        pool.disconnect()  # connections made earlier keep the timeouts they were made with
        self._drop_owned()
        self._block_max = float(pool.connection_kwargs["socket_timeout"]) / 2

    def close(self) -> None:
        self._drop_owned()
        self._redis.close()

    def _drop_owned(self) -> None:
        """Disconnect every thread's own connection; each thread makes a fresh one."""
        with self._lock:
            self._generation += 1
            owned = list(self._owned)
        for conn in owned:
            conn.disconnect()


def _result_value(record: ResultRecord) -> bytes:
    return record.state.encode() + b"\n" + record.body


def _parse_result(value: bytes) -> StoredResult:
    state, _, body = value.partition(b"\n")
    return StoredResult(state.decode(), body)


def _deliveries(queues: Sequence[str], reply: list[Any], token: str) -> list[Delivery]:
    out = []
    for i in range(1, len(reply), 5):
        index, id, body, deliveries, attempt = reply[i : i + 5]
        out.append(
            Delivery(
                id.decode(), queues[int(index) - 1], body, int(deliveries), int(attempt), token
            )
        )
    return out
