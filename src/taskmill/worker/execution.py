"""Running one delivery: decode, decide, call the task, turn what happened into an Outcome.

No processes and no broker calls here: the child applies outcomes in batches. Decisions,
in order:

1. delivered more than ``max_deliveries`` times → its worker died each time: dead letter
   (WorkerLost), so a message that kills its process cannot loop for ever;
2. undecodable body, unknown task → dead letter with the reason, the worker goes on;
3. past ``expires`` → REVOKED, not run;
4. run it: a value → SUCCESS; ``Retry`` or an ``autoretry_for`` exception with retries
   left → retry after the backoff; anything else → FAILURE with the traceback.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .. import message as message_codec
from .. import states
from ..app import App
from ..brokers.base import Delivery, ResultRecord
from ..errors import (
    DeadLettered,
    MessageDecodeError,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevoked,
    WorkerLost,
)
from ..result import error_record, exception_record, value_record
from ..task import Task

__all__ = ["Outcome", "execute", "worker_lost_reason"]

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
    try:
        msg = msg or message_codec.decode(delivery.body)
    except MessageDecodeError as exc:
        return _dead(delivery.id, f"undecodable message: {exc}", ttl)
    task = app.tasks.get(msg.task)
    if task is None:
        return _dead(delivery.id, f"unknown task {msg.task!r}: not registered here", ttl)
    ttl = app.result_ttl(task)
    if msg.expires is not None and (now or time.time()) > msg.expires:
        record = error_record(msg.id, TaskRevoked, "expired before it ran", ttl, states.REVOKED)
        return Outcome("ack", record)
    return run_task(task, msg, delivery.attempt, ttl)


def _dead(id: str, reason: str, ttl: float) -> Outcome:
    return Outcome("dead", error_record(id, DeadLettered, reason, ttl), reason=reason)


def run_task(task: Task[Any, Any], msg: message_codec.Message, attempt: int, ttl: float) -> Outcome:
    """Call the task and turn its return or exception into an Outcome."""
    started = time.perf_counter()
    try:
        with soft_time_limit(task.options.soft_time_limit):
            value = task.fn(*msg.args, **msg.kwargs)
    except Retry as request:
        cause = request.exc or request
        return _failed(task, msg, attempt, cause, ttl, request.delay, asked=True)
    except (Exception, SoftTimeLimitExceeded, SystemExit) as exc:
        return _failed(task, msg, attempt, exc, ttl)
    try:
        record = value_record(msg.id, value, ttl)
    except (TypeError, ValueError) as exc:
        error = TypeError(f"task {task.name} returned a value JSON cannot carry: {exc}")
        return Outcome("ack", exception_record(msg.id, error, ttl))
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
    delay = task.options.retry.retry_delay(exc, attempt, requested, asked)
    if delay is not None:
        logger.warning(
            "task %s[%s] raised %r; retry %d/%d in %.2fs",
            task.name,
            msg.id,
            exc,
            attempt + 1,
            task.options.retry.retries,
            delay,
        )
        return Outcome("retry", delay=delay)
    logger.error("task %s[%s] failed: %r", task.name, msg.id, exc)
    return Outcome("ack", exception_record(msg.id, exc, ttl))


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
