"""taskmill's benchmark tasks. The broker URL comes from the harness."""

from __future__ import annotations

import os

from _common import burn_cpu

from taskmill import App

app = App("bench", broker=os.environ["BENCH_TASKMILL_BROKER"])


@app.task
def noop() -> None:
    return None


@app.task
def noop_item(item: int) -> None:
    """W1m's no-op: ``Task.map`` passes each item as the one argument."""
    return None


@app.task
def burn(cpu_ms: float) -> float:
    return burn_cpu(cpu_ms)
