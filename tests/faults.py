"""A catalogue of tasks that die, hang or fail in different ways, and the bookkeeping that
lets a test see what really ran where.

These are plain functions, not tasks: a test's tasks module (written into the test's
working directory and imported by a real worker) registers the ones it needs, with the
options it needs::

    import faults
    app = App("tasks", lease_s=2)
    sigkill_self = app.task(faults.sigkill_self)
    hang = app.task(time_limit=1)(faults.hang)

Every task that matters for bookkeeping appends one line to an *execution log* when it
starts: ``tag pid unix-time``. The line is written with a single ``write`` on a file
opened with ``O_APPEND``, so lines from many processes never interleave, and a process
killed a moment later has still left its line behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

# -- bookkeeping --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Execution:
    """One line of an execution log: a task started."""

    tag: str
    pid: int
    at: float


def record(log: str, tag: object) -> None:
    """Append ``tag pid time`` to the execution log at ``log``, atomically."""
    line = f"{tag} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def executions(log: str | Path) -> list[Execution]:
    """Every line of an execution log so far (none if nothing ran yet)."""
    try:
        text = Path(log).read_text()
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        tag, pid, at = line.split()
        found.append(Execution(tag, int(pid), float(at)))
    return found


# -- tasks that work ------------------------------------------------------------------------


def square(x: int) -> int:
    return x * x


def whoami() -> int:
    """The pid of the worker child running the task."""
    return os.getpid()


def clock() -> float:
    """When the task ran, in Unix seconds."""
    return time.time()


def logged_square(log: str, x: int) -> int:
    record(log, x)
    return x * x


def logged_sleep(log: str, tag: str, seconds: float) -> int:
    """Record, sleep, return the pid: a slow task whose every execution is visible."""
    record(log, tag)
    time.sleep(seconds)
    return os.getpid()


def most_at_once(runs: list[Execution]) -> int:
    """The most tasks running at one moment, from the ``start:…`` and ``end:…`` lines the
    ``*_nap`` tasks record (an end sorts before a start at the same instant)."""
    steps = sorted((r.at, 1 if r.tag.startswith("start:") else -1) for r in runs)
    running = peak = 0
    for _, step in steps:
        running += step
        peak = max(peak, running)
    return peak


def logged_nap(log: str, tag: str, seconds: float) -> int:
    """Records its start and end around a blocking sleep; returns the pid (for threads)."""
    record(log, f"start:{tag}")
    time.sleep(seconds)
    record(log, f"end:{tag}")
    return os.getpid()


# -- async tasks ----------------------------------------------------------------------------


async def async_square(x: int, seconds: float = 0.0) -> int:
    await asyncio.sleep(seconds)
    return x * x


async def async_logged_nap(log: str, tag: str, seconds: float) -> int:
    """Records its start and end around an asyncio sleep; returns the pid."""
    record(log, f"start:{tag}")
    await asyncio.sleep(seconds)
    record(log, f"end:{tag}")
    return os.getpid()


async def async_hang(log: str, seconds: float = 3600.0) -> None:
    """Awaits far past any sensible time limit (without blocking its event loop)."""
    record(log, "hang")
    await asyncio.sleep(seconds)


async def async_block(log: str, seconds: float = 3600.0) -> None:
    """Blocks its event loop: only killing its process stops it."""
    record(log, "block")
    time.sleep(seconds)


async def async_fail_then_succeed(log: str, failures: int) -> int:
    await asyncio.sleep(0)
    return fail_then_succeed(log, failures)


async def async_cancel_itself() -> None:
    """Raises CancelledError of its own accord (no time limit asked for it)."""
    await asyncio.sleep(0)
    raise asyncio.CancelledError("gave up")


async def async_raise_own_error(message: str) -> None:
    await asyncio.sleep(0)
    raise TaskBoom(message)


# -- tasks whose process dies ---------------------------------------------------------------


def sigkill_self(log: str) -> None:
    """Dies on every delivery, the way an OOM kill or a segfault looks to the worker."""
    record(log, "sigkill")
    os.kill(os.getpid(), signal.SIGKILL)


def exit_abruptly(log: str, code: int = 3) -> None:
    """Leaves without unwinding: no finally blocks, no result."""
    record(log, "exit")
    os._exit(code)


def hang(log: str, seconds: float = 3600.0) -> None:
    """Sleeps far past any sensible time limit."""
    record(log, "hang")
    time.sleep(seconds)


def sleep_in_steps(log: str, seconds: float = 3600.0) -> None:
    """Sleeps in short steps, running Python code between them (where a thread can be
    interrupted)."""
    record(log, "steps")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


# -- tasks that fail ------------------------------------------------------------------------


class TaskBoom(Exception):
    """A task's own exception type, which a client that imported this module rebuilds."""


def raise_value_error(x: int) -> None:
    raise ValueError(f"bad value {x}")  # the line a remote traceback must show


def raise_own_error(message: str) -> None:
    raise TaskBoom(message)


def fail_then_succeed(log: str, failures: int) -> int:
    """Raises ValueError on its first ``failures`` attempts; returns the attempt number."""
    record(log, "attempt")
    attempt = len(executions(log))
    if attempt <= failures:
        raise ValueError(f"attempt {attempt} fails on purpose")
    return attempt


def retry_once(log: str, delay: float) -> int:
    """Asks for one retry ``delay`` seconds later; returns the attempt number."""
    from taskmill import Retry

    record(log, "attempt")
    attempt = len(executions(log))
    if attempt == 1:
        raise Retry(delay=delay)
    return attempt
