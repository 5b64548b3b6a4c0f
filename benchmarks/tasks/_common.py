"""What every task module shares: the CPU burner and the ready marker.

Workers run with ``benchmarks/tasks`` on their path and these environment variables:
``BENCH_REDIS_URL`` / ``BENCH_SQLITE_PATH`` (where the broker is), ``BENCH_PROFILE``
(throughput, latency, cpu or idle) and ``BENCH_READY_DIR`` (a marker file per ready
worker process, for peers that have no registry to look at).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def burn_cpu(cpu_ms: float) -> float:
    """Busy-loop until this thread has used ``cpu_ms`` of CPU time (not wall time, so a
    preempted task still does the same work). The thread clock is a system call, so it is
    read only every few dozen microseconds of arithmetic: the work stays in user space."""
    end = time.thread_time() + cpu_ms / 1000.0
    acc = 0
    while time.thread_time() < end:
        for i in range(500):
            acc += i * i
    return cpu_ms


def mark_ready() -> None:
    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:
        Path(ready_dir, f"ready-{os.getpid()}").touch()


def profile() -> str:
    return os.environ.get("BENCH_PROFILE", "throughput")
