"""Celery's benchmark tasks: Redis broker and Redis result backend, JSON."""

from __future__ import annotations

import os
from typing import Any

from _common import burn_cpu, mark_ready, profile
from celery import Celery
from celery.signals import worker_ready

URL = os.environ["BENCH_REDIS_URL"]

app = Celery("bench_celery", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Deep prefetch for many short tasks; one at a time for CPU-bound ones.
    worker_prefetch_multiplier=1 if profile() == "cpu" else 128,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@app.task
def noop() -> None:
    return None


@app.task
def burn(cpu_ms: float) -> float:
    return burn_cpu(cpu_ms)


@worker_ready.connect
def _ready(**_: Any) -> None:
    mark_ready()
