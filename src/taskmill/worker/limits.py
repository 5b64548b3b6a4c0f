"""Time limits: how a task is stopped, wherever it runs.

::

    where the task runs      soft_time_limit                      time_limit (hard)
    child's main thread      SIGALRM raises in the task            the supervisor kills the child
    a task thread            a timer raises in that thread, when   the child records the failure
                             it next runs Python code              at the deadline; recycled
    the event loop           the coroutine is cancelled            the coroutine is cancelled

Soft limits raise :class:`SoftTimeLimitExceeded` (an interrupt, a ``BaseException``) so
that the task can clean up; hard limits end with :class:`TimeLimitExceeded`. The hard
limits of the main thread and of threads are enforced by the child and the supervisor
(``child.py``, ``supervisor.py``); this module holds what runs inside the task's own
thread or coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import threading
from collections.abc import Awaitable, Iterator
from types import FrameType
from typing import Any

from ..errors import SoftTimeLimitExceeded, TimeLimitExceeded

__all__ = ["hard_limit_message", "soft_time_limit", "within_limits"]


async def within_limits(
    awaitable: Awaitable[Any], soft: float | None, hard: float | None, stopped: str
) -> Any:
    """Await ``awaitable``; cancelled at ``soft`` seconds (SoftTimeLimitExceeded) or at
    ``hard`` (TimeLimitExceeded with the message ``stopped``)."""
    hard_timer, soft_timer = asyncio.timeout(hard), asyncio.timeout(soft)
    try:
        async with hard_timer, soft_timer:
            return await awaitable
    except TimeoutError as exc:
        if hard_timer.expired():
            raise TimeLimitExceeded(stopped) from exc
        if soft_timer.expired():
            raise SoftTimeLimitExceeded("soft time limit exceeded") from exc
        raise  # the task's own TimeoutError


def hard_limit_message(name: str, id: str, limit: float | None, what: str) -> str:
    """How a hard time-limit failure reads, whoever enforced it."""
    return f"task {name}[{id}] exceeded its hard time limit of {limit}s; {what}"


def _raise_soft_limit(signum: int, frame: FrameType | None) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")


@contextlib.contextmanager
def soft_time_limit(limit: float | None) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in this thread once ``limit`` seconds pass.

    On the main thread a SIGALRM timer interrupts the task wherever it is. Other threads
    (``--pool threads``) cannot take signals: a timer thread raises the exception in the
    task's thread asynchronously, which Python delivers the next time that thread runs
    Python code, so a task blocked in one C call (a socket read, ``time.sleep``) sees it
    when that call returns. The hard time limit covers a call that never returns.
    """
    if not limit:
        yield
    elif threading.current_thread() is threading.main_thread():
        with _alarm(limit):
            yield
    else:
        with _ThreadAlarm(limit):
            yield


@contextlib.contextmanager
def _alarm(limit: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _ThreadAlarm:
    """SoftTimeLimitExceeded raised asynchronously in the thread that entered, unless it
    left first. Leaving clears an exception raised but not yet delivered, so it can never
    surface after the task, in the worker's own code."""

    def __init__(self, limit: float) -> None:
        self._thread = threading.get_ident()
        self._lock = threading.Lock()
        self._armed = self._fired = False
        self._timer = threading.Timer(limit, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> None:
        self._armed = True
        self._timer.start()

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._armed = False
            if self._fired:
                _set_async_exc(self._thread, None)

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self._fired = True
                _set_async_exc(self._thread, SoftTimeLimitExceeded)


def _set_async_exc(thread: int, kind: type[BaseException] | None) -> None:
    """Raise ``kind`` in ``thread`` when it next runs Python code (None: cancel that)."""
    exc = None if kind is None else ctypes.py_object(kind)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), exc)
