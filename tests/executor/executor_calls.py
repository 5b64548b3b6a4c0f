"""Module-level callables for the Executor tests: picklable by reference, importable by
worker processes (``tests/executor`` is on their ``sys.path``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

#: how often the initializer ran in this process
INITIALIZED = {"count": 0}


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def noop() -> None:
    return None


def whoami() -> int:
    return os.getpid()


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def nap(seconds: float, value: object = None) -> object:
    time.sleep(seconds)
    return value


def initialize(log: str) -> None:
    INITIALIZED["count"] += 1
    _append(log, f"init {os.getpid()}")


def init_count(_: object = None) -> tuple[int, int]:
    """(this worker's pid, how often the initializer ran in it)."""
    return os.getpid(), INITIALIZED["count"]


def failing_init() -> None:
    raise RuntimeError("initializer fails on purpose")


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fail_once(marker: str, value: int) -> int:
    """Raises the first time (per marker file), returns ``value`` after."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise RuntimeError("first attempt fails on purpose")
    return value


def logged_square(log: str, x: int) -> int:
    _append(log, f"{x} {os.getpid()}")
    time.sleep(0.002)
    return x * x


def _append(log: str, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Touch:
    """Unpickling this creates a file: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return Path.touch, (Path(self.path),)


def fail_or_square(x: int) -> int:
    """Negative numbers fail."""
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x
