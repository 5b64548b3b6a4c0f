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
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
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
    WorkerLost,
)
from ..progress import Reporter, current_task
from ..result import chunk_record, error_record, exception_record, value_record
from ..retries import RetryPolicy
from ..task import Task

__all__ = ["Outcome", "execute", "retry_policy", "run_chunk", "time_limit", "worker_lost_reason"]

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
    token = current_task.set(Reporter(app.broker, msg.id, ttl, app.serializer))
    try:
        if msg.chunk:
            return run_chunk(task, msg, ttl)
        return run_task(task, msg, delivery.attempt, ttl)
    finally:
        current_task.reset(token)


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
    serializer = task.app.serializer
    try:
        if task.options.soft_time_limit is None:
            value = task.fn(*msg.args, **msg.kwargs)
        else:
            with soft_time_limit(task.options.soft_time_limit):
                value = task.fn(*msg.args, **msg.kwargs)
    except Retry as request:
        cause = request.exc or request
        return _failed(task, msg, attempt, cause, ttl, request.delay, asked=True)
    except (Exception, SoftTimeLimitExceeded, SystemExit) as exc:
        return _failed(task, msg, attempt, exc, ttl)
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
    values: list[Any] = []
    failures: list[tuple[int, BaseException]] = []
    count = len(msg.args)
    try:
        fn = _chunk_callable(task, msg.leading)
    except Exception as exc:  # an Executor's initializer failed here: every item fails
        failures = [(index, exc) for index in range(count)]
        return Outcome(
            "ack", chunk_record(msg.id, [None] * count, failures, ttl, task.app.serializer)
        )
    try:
        with soft_time_limit(_scaled(task.options.soft_time_limit, count)):
            _run_items(fn, msg, retry_policy(task, msg), values, failures)
    except SoftTimeLimitExceeded as stopped:
        # the item running and the ones not started fail; the chunk's result is stored
        failures += [(index, stopped) for index in range(len(values), count)]
        values += [None] * (count - len(values))
    return Outcome("ack", chunk_record(msg.id, values, failures, ttl, task.app.serializer))


def _chunk_callable(task: Task[Any, Any], leading: tuple[Any, ...]) -> Callable[..., Any]:
    """What runs each item: the task's function with the chunk's leading arguments bound
    (for an Executor's chunk, its callable itself, after its initializer)."""
    if not leading:
        return task.fn
    if isinstance(task.fn, PickledCall):
        return task.fn.bind(*leading)
    return functools.partial(task.fn, *leading)


def _run_items(
    fn: Callable[..., Any],
    msg: message_codec.Message,
    policy: RetryPolicy,
    values: list[Any],
    failures: list[tuple[int, BaseException]],
) -> None:
    kwargs = msg.kwargs
    singles = msg.singles
    for index, item in enumerate(msg.args):
        try:
            # an item that is not an argument list fails on its own, with a TypeError
            values.append(fn(item, **kwargs) if singles else fn(*item, **kwargs))
        except (Exception, SystemExit) as exc:
            args = (item,) if singles else item
            value, error = _retry_item(fn, args, kwargs, policy, exc)
            values.append(value)
            if error is not None:
                failures.append((index, error))


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
        if isinstance(exc, Retry):
            cause: BaseException = exc.exc or exc
            delay = policy.retry_delay(cause, attempt, exc.delay, asked=True)
        else:
            cause = exc
            delay = policy.retry_delay(exc, attempt)
        if delay is None:
            return None, cause
        attempt += 1
        time.sleep(delay)
        try:
            return fn(*item, **kwargs), None
        except (Exception, SystemExit) as again:
            exc = again


def _scaled(limit: float | None, items: int) -> float | None:
    """A per-call time limit, for a chunk of ``items`` calls."""
    return None if limit is None else limit * max(1, items)


def time_limit(task: Task[Any, Any] | None, msg: message_codec.Message | None) -> float | None:
    """The hard time limit of a message: its own, else its task's; per item for a chunk."""
    if task is None or msg is None:
        return None
    limit = msg.time_limit if msg.time_limit is not None else task.options.time_limit
    return _scaled(limit, len(msg.args)) if msg.chunk else limit


def _raise_soft_limit(signum: int, frame: FrameType | None) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


@contextlib.contextmanager
def soft_time_limit(limit: float | None) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in this (main) thread once ``limit`` seconds pass."""
    if not limit or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
