"""What benchmarks/executor.py runs: plain functions for the executors, and a taskmill app
(on the Redis URL in ``BENCH_EXECUTOR_REDIS``) whose ``tiny`` task ``Task.map`` sends."""

from __future__ import annotations

import os

from tasks._common import burn_cpu  # benchmarks/ is on the path of client and workers

from taskmill import App


def noop() -> None:
    return None


def tiny(x: int) -> int:
    return x


burn = burn_cpu  # the same CPU burner as the peer benchmark's tasks


app = App("bench_executor", broker=os.environ.get("BENCH_EXECUTOR_REDIS", "sqlite:///unused.db"))
tiny_task = app.task(name="bench_executor.tiny")(tiny)
