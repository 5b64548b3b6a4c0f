"""Where W1's time goes: CPU per task in the client, the worker tree and Redis, and the
Redis commands each task costs.

    .venv/bin/python benchmarks/where_time_goes.py [--broker redis|sqlite] [-n 10000]

Runs taskmill's W1 (a ``.delay()`` loop, then every result awaited) against a 2-child
worker, reading the CPU time of every process before and after, and Redis's
``INFO commandstats`` (reset first: run it on a Redis nobody else is using). Uses db 13 of
the Redis on 127.0.0.1:6379 (flushed) or a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis

TASKS = Path(__file__).parent / "tasks"
REDIS_URL = "redis://127.0.0.1:6379/13?prefix=where"


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def wait_until_served(noop: Any) -> None:
    """Until the worker answers (30 s at most)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            noop.delay().get(timeout=1)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def print_commandstats(server: redis.Redis, n: int) -> None:
    stats = server.info("commandstats")
    rows = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
    print("  Redis commands per task (calls, server us):")
    for name, s in rows[:12]:
        calls, usec = s["calls"] / n, s["usec"] / n
        print(f"    {name.removeprefix('cmdstat_'):<16} {calls:5.2f}  {usec:6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("-n", type=int, default=10_000)
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="taskmill-where-")
    url = REDIS_URL if options.broker == "redis" else f"sqlite:///{scratch}/w1.db"
    server = redis.Redis(db=13)
    if options.broker == "redis":
        server.flushdb()
    env = {**os.environ, "TASKMILL_BROKER": url, "PYTHONPATH": str(TASKS)}
    os.environ["TASKMILL_BROKER"] = url
    sys.path.insert(0, str(Path(__file__).parent))
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskmill", "worker", "-A", "where_tasks", "-c", "2",
         "--loglevel", "warning"],
        env={**env, "PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        from where_tasks import noop

        wait_until_served(noop)
        tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children()]
        redis_pid = int(server.info("server")["process_id"])
        groups = {"client": [psutil.Process()], "worker": tree}
        if options.broker == "redis":
            groups["redis"] = [psutil.Process(redis_pid)]
            server.config_resetstat()
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        started = time.perf_counter()
        results = [noop.delay() for _ in range(options.n)]
        for r in results:
            r.get(timeout=60)
        took = time.perf_counter() - started
        after = {k: cpu_seconds(v) for k, v in groups.items()}
        print(f"W1 on {options.broker}: {options.n / took:,.0f} tasks/s")
        for k in groups:
            print(f"  CPU per task, {k:<6}: {(after[k] - before[k]) / options.n * 1e6:6.0f} us")
        if options.broker == "redis":
            print_commandstats(server, options.n)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        if options.broker == "redis":
            server.flushdb()
        server.close()


if __name__ == "__main__":
    main()
