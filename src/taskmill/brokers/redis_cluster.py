"""The Redis broker on Redis Cluster: the same scripts, called once per hash slot.

::

    worker ──ack──▶ 1. ack.lua per result id ─▶ node of slot {id}    (results first)
                    2. ack.lua per queue ─────▶ node of slot {queue}  (then the messages)
    client ──enqueue.lua per queue──▶ node of {queue} ──▶ wake-up lists it returns
    worker ──reserve.lua per queue, in the order given; blocked: BLPOP its own wake-up list

A script may touch the keys of one hash slot only. Every key has a hash tag (the queue,
the result's id, ``{workers}``), and :class:`RedisClusterBroker` calls each script with
the keys of one slot: one queue, or one result. Calls to different slots of one step go
in one pipeline, which redis-py sends to the nodes side by side.

Results before the messages. ``ack`` and ``dead_letter`` store the results first, then
remove the messages, in two round trips instead of one atomic script (``dead_letter``
first renews the lease, so that a stale one stores nothing). A worker that dies
between the two leaves a stored result and a leased message; the lease expires, the
message is delivered again, and the worker, seeing its result stored already, acknowledges
it without running it. So a message is still never gone without its result, and a task
still has exactly one result (the first final result wins).

Several queues. One script or one ``BLPOP`` cannot span queues in different slots, so a
reserve over several queues calls ``reserve.lua`` once per queue, in the order the queues
are given, until ``max_count`` are leased: **earlier queues first**, then priority and
FIFO within a queue (on one server, priority decides across queues). Before it blocks,
each per-queue call that found nothing adds the reserver's own wake-up list
(``prefix:wake:{<token>}``) to that queue's ``waiters`` set, atomically with finding it
empty; enqueue and put-backs that make a message ready return (and clear) those lists, and
the client pushes a token onto each. The reserver blocks in ``BLPOP`` on its one list,
also bounded by the next delayed message or lease expiry, so it never polls and misses no
message. A reserve of one queue is as on one server: ``BLPOP`` on the queue's ``notify``
list and the script, pipelined. An enqueue to several queues is atomic per queue only.

Waiting for results. ``Result.get`` blocks on its id's waiter list as on one server; a
wait for several ids blocks on the first (the oldest pending, which the callers put
first) at most ``MANY_WAIT_S`` at a time, then reads all of them.

Each queue's ETAs and leases follow the clock of the node holding it.

URL: ``redis+cluster://[user:password@]host:port[,host:port...][?prefix=...]``, or
``rediss+cluster://`` for TLS; any node of the cluster will do, more are tried in turn.
Also ``reconnect_s=`` and ``socket_timeout=`` as for one server; no database number.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

from ..errors import BrokerError, ConfigurationError
from .base import Broker, Delivery, Outgoing, ResultRecord, StoredResult, Wanted
from .redis import DEFAULT_SOCKET_TIMEOUT, RedisBroker, _deliveries, _result_value

__all__ = ["RedisClusterBroker"]

SCHEMES = ("redis+cluster", "rediss+cluster")
#: a wait for several results looks at all of them at least this often
MANY_WAIT_S = 0.25
#: how long dead_letter holds a message's lease while it stores the result first
DEAD_LETTER_HOLD_S = 30.0


def _number(params: dict[str, str], name: str, default: float, url: str) -> float:
    try:
        return float(params.pop(name, default))
    except ValueError:
        raise ConfigurationError(f"{name} in {url!r} must be a number") from None


def _parse_cluster_url(url: str, shown: str) -> tuple[list[ClusterNode], dict[str, Any]]:
    """(startup nodes, RedisCluster options incl. prefix and reconnect_s) from the URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"not a Redis Cluster URL: {shown!r}")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"Redis Cluster has no databases: drop the path in {shown!r}")
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(f"expected host:port in {shown!r}, got {address!r}")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))  # type: ignore[no-untyped-call]
    if not nodes:
        raise ConfigurationError(f"no cluster node in {shown!r}")
    params = dict(parse_qsl(parts.query))
    options: dict[str, Any] = {
        "prefix": params.pop("prefix", "taskmill"),
        "reconnect_s": _number(params, "reconnect_s", 20, shown),
        "socket_timeout": _number(params, "socket_timeout", DEFAULT_SOCKET_TIMEOUT, shown),
        "ssl": parts.scheme == "rediss+cluster",
    }
    if auth:
        user, _, password = auth.partition(":")
        options |= {"username": unquote(user) or None, "password": unquote(password) or None}
    if params:
        raise ConfigurationError(f"unknown parameters {sorted(params)} in {shown!r}")
    return nodes, options


def _per_queue(
    deliveries: Sequence[Delivery], call: Callable[[list[Delivery]], list[bool]]
) -> list[bool]:
    """``call`` once per queue (one hash slot) with its deliveries; the answers in the
    order of ``deliveries``."""
    positions: dict[str, list[int]] = {}
    for i, d in enumerate(deliveries):
        positions.setdefault(d.queue, []).append(i)
    answers = [False] * len(deliveries)
    for indexes in positions.values():
        for i, ok in zip(indexes, call([deliveries[i] for i in indexes]), strict=True):
            answers[i] = ok
    return answers


class RedisClusterBroker(RedisBroker):
    """The contract on a Redis Cluster (7 recommended): same scripts, one slot per call."""

    _enqueue_kinds = (*RedisBroker._enqueue_kinds, "waiters")

    def __init__(self, url: str) -> None:
        #: per thread: its wake-up list for reserves over several queues
        self._wakers = threading.local()
        super().__init__(url)

    def _connect(self, url: str) -> Any:
        nodes, options = _parse_cluster_url(url, self.url)
        self.prefix = options.pop("prefix")
        self.reconnect_s = options.pop("reconnect_s")
        if not self.prefix or any(c in self.prefix for c in "{}"):
            raise ConfigurationError(
                f"bad key prefix {self.prefix!r}: must be non-empty, without braces"
            )
        self._block_max = options["socket_timeout"] / 2
        try:
            return self._call(
                "connect",
                RedisCluster,
                startup_nodes=nodes,
                socket_connect_timeout=5,
                **options,
            )
        except redis.exceptions.RedisClusterException as exc:
            raise BrokerError(f"Redis Cluster at {self.url} unreachable: {exc}") from exc

    def __repr__(self) -> str:
        return f"<RedisClusterBroker {self.url} prefix={self.prefix!r}>"

    def limit_call_time(self, seconds: float) -> None:
        """As on one server, for the connections to every node, and those made later."""
        self.reconnect_s = min(self.reconnect_s, seconds)
        nodes = [n for n in self._redis.get_nodes() if n.redis_connection is not None]
        settings = [self._redis.nodes_manager.connection_kwargs]
        settings += [n.redis_connection.connection_pool.connection_kwargs for n in nodes]
        for kwargs in settings:
            for name in ("socket_timeout", "socket_connect_timeout"):
                current = kwargs.get(name)
                kwargs[name] = seconds if current is None else min(current, seconds)
        for node in nodes:
            node.redis_connection.connection_pool.disconnect()
        self._block_max = min(self._block_max, seconds / 2)

    def _get_many(self, keys: list[str]) -> list[bytes | None]:
        return list(self._call("fetch_results", self._redis.mget_nonatomic, keys))

    def _exec(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """As on one server, through redis-py's cluster pipeline, which sends each
        command to the node of its keys' slot (side by side) and keeps the order."""
        pipe = self._redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    def _enqueue_many(self, by_queue: dict[str, list[Outgoing]]) -> list[Any]:
        """Each queue's batch atomically, side by side (no transaction spans slots)."""
        calls = [("enqueue", *self._enqueue_call(q, batch)) for q, batch in by_queue.items()]
        return self._pipelined_scripts(calls)

    # -- ack: results first, then the messages ------------------------------------------

    def _store_first(self, results: Sequence[ResultRecord]) -> None:
        """ack.lua once per result (its id is its slot), in one pipeline."""
        calls = []
        for r in results:
            keys = [self._result_key(r.id), self._waiter_key(r.id)]
            calls.append(("ack", keys, [1, 0, _result_value(r), max(1, int(r.ttl * 1000))]))
        if calls:
            self._call("ack", self._pipelined_scripts, calls)

    def ack(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()
    ) -> list[bool]:
        self._store_first(results)
        return self._ack_then(deliveries, [])[0]

    def _ack_then(
        self, deliveries: Sequence[Delivery], then: list[tuple[str, list[str], list[Any]]]
    ) -> tuple[list[bool], list[Any]]:
        """ack.lua per queue, and the script calls ``then``, in one pipeline: (accepted
        per delivery, the replies of ``then``)."""
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        calls = [("ack", *self._ack_call(batch, ())) for batch in by_queue.values()]
        replies = self._call("ack", self._pipelined_scripts, calls + then) if calls or then else []
        accepted = {
            (d.id, d.lease): bool(ok)
            for batch, reply in zip(by_queue.values(), replies, strict=False)
            for d, ok in zip(batch, reply, strict=True)
        }
        return [accepted[d.id, d.lease] for d in deliveries], replies[len(calls) :]

    def extend(self, deliveries: Sequence[Delivery], lease_s: float) -> list[bool]:
        parent = super().extend
        return _per_queue(deliveries, lambda batch: parent(batch, lease_s))

    def _putback(self, mode: str, deliveries: Sequence[Delivery], delay: float) -> list[bool]:
        parent = super()._putback
        return _per_queue(deliveries, lambda batch: parent(mode, batch, delay))

    def _ack_and_lease(
        self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord], want: Wanted
    ) -> tuple[list[bool], list[Delivery]]:
        """Results first; then the acks and, for one queue, a first reserve in one
        round trip (several queues: reserve goes queue by queue)."""
        if len(want.queues) != 1:
            return Broker._ack_and_lease(self, deliveries, results, want)
        self._store_first(results)
        token = uuid.uuid4().hex
        keys = self._queue_keys(want.queues[0])
        accepted, (reply,) = self._ack_then(
            deliveries, [("reserve", keys, [want.max_count, want.lease_s, token])]
        )
        return accepted, self._reserve_rest(want, keys, reply, token)

    def dead_letter(
        self, delivery: Delivery, reason: str, result: ResultRecord | None = None
    ) -> bool:
        if result is not None:
            # A stale lease must leave no result: renewing it checks the token and keeps
            # the message ours while the result is stored in its own slot.
            if not self.extend([delivery], DEAD_LETTER_HOLD_S)[0]:
                return False
            self._store_first([result])
        keys = self._queue_keys(
            delivery.queue,
            ("ready", "delayed", "leased", "msg", "meta", "dead", "deadmsg", "deadinfo"),
        )
        return bool(self._script("dead_letter", keys, [delivery.id, delivery.lease, reason]))

    # -- reserve over several queues ------------------------------------------------------

    def reserve(
        self,
        queues: Sequence[str],
        max_count: int,
        lease_s: float,
        wait_s: float,
        consumer: str = "",
    ) -> list[Delivery]:
        queues = list(dict.fromkeys(queues))
        if len(queues) <= 1 or max_count <= 0:
            return super().reserve(queues, max_count, lease_s, wait_s, consumer)
        waker = self._waker()
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            found, hint = self._reserve_each(queues, max_count, lease_s, waker)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            block = min(left if hint < 0 else min(left, max(hint, 0.001)), self._block_max)
            self._call("reserve", self._redis.blpop, [waker], timeout=block)

    def _reserve_each(
        self, queues: list[str], max_count: int, lease_s: float, waker: str
    ) -> tuple[list[Delivery], float]:
        """reserve.lua per queue in order, until max_count; (deliveries, the soonest hint)."""
        found: list[Delivery] = []
        hint = -1.0
        for queue in queues:
            token = uuid.uuid4().hex
            args = [max_count - len(found), lease_s, token, waker]
            reply = self._script("reserve", self._queue_keys(queue), args)
            found += _deliveries([queue], reply, token)
            if len(found) >= max_count:
                break
            due = float(reply[0])
            if len(reply) <= 1 and due >= 0:
                hint = due if hint < 0 else min(hint, due)
        return found, hint

    def _waker(self) -> str:
        """This thread's wake-up list (a forked process gets one of its own)."""
        mine = getattr(self._wakers, "key", None)
        if mine is None or self._wakers.pid != os.getpid():
            self._wakers.key = mine = f"{self.prefix}:wake:{{{uuid.uuid4().hex}}}"
            self._wakers.pid = os.getpid()
        return str(mine)

    # -- results ----------------------------------------------------------------------

    def wait_results(self, ids: Collection[str], timeout: float | None) -> dict[str, StoredResult]:
        """One id: a BLPOP on its waiter list. Several: BLPOP on the first one's, at most
        MANY_WAIT_S at a time, then read them all (their waiter lists are in other slots)."""
        ids = list(ids)
        if len(ids) <= 1:
            return super().wait_results(ids, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        first = self._waiter_key(ids[0])
        while True:
            left = MANY_WAIT_S if deadline is None else deadline - time.monotonic()
            if left > 0:
                chunk = min(left, MANY_WAIT_S, self._block_max)
                # what it pops is read again below, with the others: the stored result
                self._call("wait_results", self._redis.blpop, [first], timeout=chunk)
            final = self.fetch_results(ids, final_only=True)
            if final or (deadline is not None and time.monotonic() >= deadline):
                return final
