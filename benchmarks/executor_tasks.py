"""What benchmarks/executor.py runs: plain functions for the executors, and a taskmill app
(on the Redis URL in ``BENCH_EXECUTOR_REDIS``) whose ``tiny`` task ``Task.map`` sends."""

from __future__ import annotations

import os
import time

from taskmill import App


def noop() -> None:
    return None


def tiny(x: int) -> int:
    return x


def burn(cpu_ms: float) -> float:
    """Busy-loop until this thread used ``cpu_ms`` of CPU (not wall) time."""
    end = time.thread_time() + cpu_ms / 1000.0
    acc = 0
    while time.thread_time() < end:
        for i in range(500):
            acc += i * i
    return cpu_ms


app = App("bench_executor", broker=os.environ.get("BENCH_EXECUTOR_REDIS", "sqlite:///unused.db"))
tiny_task = app.task(name="bench_executor.tiny")(tiny)
