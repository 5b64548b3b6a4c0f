"""Running one delivery: decode, decide, call the task, turn what happened into an Outcome.

No processes and no broker calls here: the child applies outcomes in batches. Decisions,
in order:

1. delivered more than ``max_deliveries`` times → its worker died each time: dead letter
   (WorkerLost), so a message that kills its process cannot loop for ever;
2. undecodable body, a body whose id is not the message's, unknown task → dead letter
   with the reason, the worker goes on;
3. past ``expires`` → REVOKED, not run;
4. run it: a value → SUCCESS; ``Retry`` or an ``autoretry_for`` exception with retries
   left → retry after the backoff; anything else → FAILURE with the traceback.

A chunk message runs its task once per item and is acknowledged with one SUCCESS result
holding every item's value or exception; an item's retries run in place, after their
backoff. A message's own ``retries`` (an Executor's) override the task's: that many
immediate re-runs for any exception. While a task runs, ``update_progress`` reports for it.

An ``async def`` task goes through the same decisions in :func:`execute_async`, awaited on
the child's event loop; its time limits cancel it (``asyncio.timeout``) rather than
interrupt it, and what it returned or raised becomes an Outcome by the same functions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import message as message_codec
from .. import states
from ..app import App
from ..brokers.base import Delivery, ResultRecord
from ..calls import CALL_TASK, PickledCall
from ..errors import (
    DeadLettered,
    MessageDecodeError,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevoked,
    TimeLimitExceeded,
    WorkerLost,
)
from ..progress import Reporter, current_task
from ..result import chunk_record, error_record, exception_record, value_record
from ..retries import RetryPolicy
from ..task import Task
from .limits import hard_limit_message, soft_time_limit, within_limits

__all__ = [
    "Outcome",
    "execute",
    "execute_async",
    "failure",
    "retry_policy",
    "run_chunk",
    "time_limit",
    "worker_lost_reason",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a delivery: ``ack`` it with ``result``, ``retry`` it after
    ``delay`` seconds, or ``dead`` (dead-letter it with ``reason``, storing ``result``)."""

    action: str
    result: ResultRecord | None = None
    delay: float = 0.0
    reason: str = ""


def worker_lost_reason(delivery: Delivery) -> str:
    died = delivery.deliveries - 1
    return f"worker lost: the worker died on each of {died} deliveries of this message"


def execute(
    app: App, delivery: Delivery, msg: message_codec.Message | None = None, now: float | None = None
) -> Outcome:
    """Decide on a delivery and, where it should run, run it (``msg``: decoded already)."""
    ready = prepare(app, delivery, msg, now)
    if isinstance(ready, Outcome):
        return ready
    task, msg, ttl = ready
    token = current_task.set(Reporter(app.broker, msg.id, ttl, app.serializer))
    try:
        if msg.chunk:
            return run_chunk(task, msg, ttl)
        return run_task(task, msg, delivery.attempt, ttl)
    finally:
        current_task.reset(token)


async def execute_async(
    app: App, delivery: Delivery, msg: message_codec.Message | None = None, now: float | None = None
) -> Outcome:
    """:func:`execute` for an async task, on the running event loop. ``update_progress``
    reports for this coroutine: each asyncio task has a context of its own."""
    ready = prepare(app, delivery, msg, now)
    if isinstance(ready, Outcome):
        return ready
    task, msg, ttl = ready
    current_task.set(Reporter(app.broker, msg.id, ttl, app.serializer))
    if msg.chunk:
        return await run_chunk_async(task, msg, ttl)
    return await run_task_async(task, msg, delivery.attempt, ttl)


Ready = tuple[Task[Any, Any], message_codec.Message, float]


def prepare(
    app: App, delivery: Delivery, msg: message_codec.Message | None, now: float | None
) -> Outcome | Ready:
    """The decisions taken before a task runs: an Outcome where it must not run, else
    (its task, its message, its result TTL)."""
    ttl = app.settings.result_ttl
    if delivery.deliveries > app.settings.max_deliveries:
        reason = worker_lost_reason(delivery)
        return Outcome("dead", error_record(delivery.id, WorkerLost, reason, ttl), reason=reason)
    if len(delivery.body) > app.settings.max_message_bytes:
        size, limit = len(delivery.body), app.settings.max_message_bytes
        return _dead(delivery.id, f"oversized message: {size:,} bytes, over {limit:,}", ttl)
    try:
        msg = msg or message_codec.decode(delivery.body, app.serializer)
    except MessageDecodeError as exc:
        return _dead(delivery.id, f"undecodable message: {exc}", ttl)
    except Exception as exc:  # whatever a crafted body makes a decoder raise
        return _dead(delivery.id, f"undecodable message: {type(exc).__name__}: {exc}", ttl)
    if msg.id != delivery.id:
        # its result would be stored under another id, and the caller of this one would
        # wait for ever
        reason = f"undecodable message: its body's id {msg.id!r} does not match its own"
        return _dead(delivery.id, reason, ttl)
    task = app.tasks.get(msg.task)
    if task is None:
        return _dead(delivery.id, f"unknown task {msg.task!r}: not registered here", ttl)
    ttl = app.result_ttl(task)
    if msg.expires is not None and (now or time.time()) > msg.expires:
        record = error_record(msg.id, TaskRevoked, "expired before it ran", ttl, states.REVOKED)
        return Outcome("ack", record)
    return task, msg, ttl


def retry_policy(task: Task[Any, Any], msg: message_codec.Message) -> RetryPolicy:
    """The task's policy, or the message's own ``retries``: immediate, for any Exception."""
    if msg.retries is None:
        return task.options.retry
    return RetryPolicy(retries=msg.retries, backoff=0.0, jitter=False, autoretry_for=(Exception,))


def _dead(id: str, reason: str, ttl: float) -> Outcome:
    return Outcome("dead", error_record(id, DeadLettered, reason, ttl), reason=reason)


def run_task(task: Task[Any, Any], msg: message_codec.Message, attempt: int, ttl: float) -> Outcome:
    """Call the task and turn its return or exception into an Outcome."""
    started = time.perf_counter()
    try:
        if task.options.soft_time_limit is None:
            value = task.fn(*msg.args, **msg.kwargs)
        else:
            with soft_time_limit(task.options.soft_time_limit):
                value = task.fn(*msg.args, **msg.kwargs)
    except (Exception, SoftTimeLimitExceeded, SystemExit) as exc:
        return failure(task, msg, attempt, exc, ttl)
    return success(task, msg, value, ttl, started)


async def run_task_async(
    task: Task[Any, Any], msg: message_codec.Message, attempt: int, ttl: float
) -> Outcome:
    """Await an async task within its time limits; its return or exception as an Outcome.

    At ``soft_time_limit`` the coroutine is cancelled (it sees ``CancelledError`` at its
    current ``await`` and may clean up) and fails with SoftTimeLimitExceeded; at the hard
    ``time_limit`` likewise, with TimeLimitExceeded. Either may be retried by policy.
    """
    started = time.perf_counter()
    limit = time_limit(task, msg)
    stopped = hard_limit_message(task.name, msg.id, limit, "it was cancelled")
    try:
        value = await within_limits(
            task.fn(*msg.args, **msg.kwargs), task.options.soft_time_limit, limit, stopped
        )
    # A CancelledError that gets here is the task's own (the time limits' cancellations
    # come out of within_limits as TimeoutErrors): it fails, as any exception would.
    except (Exception, SoftTimeLimitExceeded, SystemExit, asyncio.CancelledError) as exc:
        return failure(task, msg, attempt, exc, ttl)
    return success(task, msg, value, ttl, started)


def failure(
    task: Task[Any, Any],
    msg: message_codec.Message,
    attempt: int,
    exc: BaseException,
    ttl: float,
) -> Outcome:
    """What a task's exception leads to: a retry (``Retry``, or an ``autoretry_for``
    exception while retries are left) or a FAILURE result."""
    if isinstance(exc, Retry):
        return _failed(task, msg, attempt, exc.exc or exc, ttl, exc.delay, asked=True)
    return _failed(task, msg, attempt, exc, ttl)


def success(
    task: Task[Any, Any], msg: message_codec.Message, value: Any, ttl: float, started: float
) -> Outcome:
    """A task's return value as a SUCCESS result (or a FAILURE, when it cannot be sent)."""
    serializer = task.app.serializer
    try:
        record = value_record(msg.id, value, ttl, serializer)
    except (TypeError, ValueError) as exc:
        what = "JSON" if serializer.format == "json" else serializer.format
        error = TypeError(f"task {task.name} returned a value {what} cannot carry: {exc}")
        return Outcome("ack", exception_record(msg.id, error, ttl, serializer))
    if logger.isEnabledFor(logging.DEBUG):
        took = time.perf_counter() - started
        logger.debug("task %s[%s] succeeded in %.4fs", task.name, msg.id, took)
    return Outcome("ack", record)


def _failed(
    task: Task[Any, Any],
    msg: message_codec.Message,
    attempt: int,
    exc: BaseException,
    ttl: float,
    requested: float | None = None,
    asked: bool = False,
) -> Outcome:
    policy = retry_policy(task, msg)
    delay = policy.retry_delay(exc, attempt, requested, asked)
    if delay is not None:
        logger.warning(
            "task %s[%s] raised %r; retry %d/%d in %.2fs",
            task.name,
            msg.id,
            exc,
            attempt + 1,
            policy.retries,
            delay,
        )
        return Outcome("retry", delay=delay)
    if task.name != CALL_TASK:  # an Executor's caller gets the exception; it is no news here
        logger.error("task %s[%s] failed: %r", task.name, msg.id, exc)
    return Outcome("ack", exception_record(msg.id, exc, ttl, task.app.serializer))


def run_chunk(task: Task[Any, Any], msg: message_codec.Message, ttl: float) -> Outcome:
    """Run every item of a chunk message; one SUCCESS result holds each item's outcome."""
    results = _ChunkResults(len(msg.args))
    try:
        fn = _chunk_callable(task, msg.leading)
    except Exception as exc:  # an Executor's initializer failed here: every item fails
        results.halt(exc)
        return results.outcome(task, msg, ttl)
    try:
        with soft_time_limit(_scaled(task.options.soft_time_limit, results.count)):
            _run_items(fn, msg, retry_policy(task, msg), results)
    except SoftTimeLimitExceeded as stopped:
        results.halt(stopped)
    return results.outcome(task, msg, ttl)


@dataclass(slots=True)
class _ChunkResults:
    """Each item's value or exception, as a chunk runs."""

    count: int
    values: list[Any] = field(default_factory=list)
    failures: list[tuple[int, BaseException]] = field(default_factory=list)

    def add(self, index: int, value: Any, error: BaseException | None) -> None:
        self.values.append(value)
        if error is not None:
            self.failures.append((index, error))

    def halt(self, exc: BaseException) -> None:
        """The item running and the ones not started fail with ``exc``."""
        self.failures += [(index, exc) for index in range(len(self.values), self.count)]
        self.values += [None] * (self.count - len(self.values))

    def outcome(self, task: Task[Any, Any], msg: message_codec.Message, ttl: float) -> Outcome:
        serializer = task.app.serializer
        return Outcome("ack", chunk_record(msg.id, self.values, self.failures, ttl, serializer))


def _chunk_callable(task: Task[Any, Any], leading: tuple[Any, ...]) -> Callable[..., Any]:
    """What runs each item: the task's function with the chunk's leading arguments bound
    (for an Executor's chunk, its callable itself, after its initializer)."""
    if not leading:
        return task.fn
    if isinstance(task.fn, PickledCall):
        return task.fn.bind(*leading)
    return functools.partial(task.fn, *leading)


def _run_items(
    fn: Callable[..., Any], msg: message_codec.Message, policy: RetryPolicy, results: _ChunkResults
) -> None:
    kwargs = msg.kwargs
    singles = msg.singles
    append = results.values.append  # the hot loop of a map: no call it can spare
    for index, item in enumerate(msg.args):
        try:
            # an item that is not an argument list fails on its own, with a TypeError
            append(fn(item, **kwargs) if singles else fn(*item, **kwargs))
        except (Exception, SystemExit) as exc:
            args = (item,) if singles else item
            results.add(index, *_retry_item(fn, args, kwargs, policy, exc))


def _retry_item(
    fn: Callable[..., Any],
    item: Any,
    kwargs: dict[str, Any],
    policy: RetryPolicy,
    exc: BaseException,
) -> tuple[Any, BaseException | None]:
    """A failed item of a chunk, retried in place (after its backoff) while its policy
    says so: its value, or the exception it finally failed with."""
    attempt = 0
    while True:
        cause, delay = _item_retry(policy, exc, attempt)
        if delay is None:
            return None, cause
        attempt += 1
        time.sleep(delay)
        try:
            return fn(*item, **kwargs), None
        except (Exception, SystemExit) as again:
            exc = again


def _item_retry(
    policy: RetryPolicy, exc: BaseException, attempt: int
) -> tuple[BaseException, float | None]:
    """Whether a chunk's failed item runs again: (the exception it failed with, the delay
    before its next try, or None)."""
    if isinstance(exc, Retry):
        return exc.exc or exc, policy.retry_delay(exc.exc or exc, attempt, exc.delay, asked=True)
    return exc, policy.retry_delay(exc, attempt)


async def run_chunk_async(task: Task[Any, Any], msg: message_codec.Message, ttl: float) -> Outcome:
    """:func:`run_chunk` for an async task: items awaited one after the other on the event
    loop, each retried in place; the chunk's time limits are the task's times its items."""
    results = _ChunkResults(len(msg.args))
    fn = _chunk_callable(task, msg.leading)
    limit = time_limit(task, msg)
    stopped = hard_limit_message(task.name, msg.id, limit, "it was cancelled")
    soft = _scaled(task.options.soft_time_limit, results.count)
    items = _await_items(fn, msg, retry_policy(task, msg), results)
    try:
        await within_limits(items, soft, limit, stopped)
    except (SoftTimeLimitExceeded, TimeLimitExceeded) as halted:
        results.halt(halted)
    return results.outcome(task, msg, ttl)


async def _await_items(
    fn: Callable[..., Any], msg: message_codec.Message, policy: RetryPolicy, results: _ChunkResults
) -> None:
    for index, item in enumerate(msg.args):
        args = (item,) if msg.singles else item
        results.add(index, *await _await_item(fn, args, msg.kwargs, policy))


async def _await_item(
    fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], policy: RetryPolicy
) -> tuple[Any, BaseException | None]:
    """One item of an async chunk, retried in place: its value, or its last exception."""
    attempt = 0
    while True:
        try:
            return await fn(*args, **kwargs), None
        except (Exception, SystemExit) as exc:
            cause, delay = _item_retry(policy, exc, attempt)
            if delay is None:
                return None, cause
            attempt += 1
            await asyncio.sleep(delay)


def _scaled(limit: float | None, items: int) -> float | None:
    """A per-call time limit, for a chunk of ``items`` calls."""
    return None if limit is None else limit * max(1, items)


def time_limit(task: Task[Any, Any] | None, msg: message_codec.Message | None) -> float | None:
    """The hard time limit of a message: its own, else its task's; per item for a chunk."""
    if task is None or msg is None:
        return None
    limit = msg.time_limit if msg.time_limit is not None else task.options.time_limit
    return _scaled(limit, len(msg.args)) if msg.chunk else limit
