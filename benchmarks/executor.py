"""taskmill.Executor and Task.map beside ProcessPoolExecutor and multiprocessing.Pool.

    .venv/bin/python benchmarks/executor.py               # print the table
    .venv/bin/python benchmarks/executor.py --write-docs  # and put it in docs/benchmarks.md
    .venv/bin/python benchmarks/executor.py --quick       # smaller N, one round

::

    this process ── for each workload: the three pools, made and warmed up, then ROUNDS
      rounds in which each system runs once, in turn (the median round of each counts):
      ProcessPoolExecutor(2) │ multiprocessing.Pool(2) │ taskmill.Executor(max_workers=2)
    Task.map on Redis ── `python -m taskmill worker -c 2` on db 12 under a prefix of its
      own (deleted afterwards), stopped by pid

All systems run in this one process with the project's virtual environment, taking
turns, so the ratios compare like with like on this machine even when its load changes
(idle pools wait on a queue, a pipe or a socket: they take no CPU from the one measured).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import executor_tasks as work  # noqa: E402  (benchmarks/ is not a package)

import taskmill  # noqa: E402

DOC = HERE.parent / "docs" / "benchmarks.md"
START = "<!-- executor-benchmark:start -->"
END = "<!-- executor-benchmark:end -->"
REDIS = "redis://127.0.0.1:6379/12"
Measure = Callable[[Any], float]


def submit_noop(n: int) -> Callable[[Any], float]:
    def run(pool: Any) -> float:
        started = time.perf_counter()
        if isinstance(pool, concurrent.futures.Executor):
            futures = [pool.submit(work.noop) for _ in range(n)]
            for f in futures:
                f.result()
        else:
            handles = [pool.apply_async(work.noop) for _ in range(n)]
            for h in handles:
                h.get()
        return n / (time.perf_counter() - started)

    return run


def map_tiny(n: int, chunksize: int) -> Callable[[Any], float]:
    def run(pool: Any) -> float:
        started = time.perf_counter()
        if isinstance(pool, concurrent.futures.Executor):
            out = list(pool.map(work.tiny, range(n), chunksize=chunksize))
        else:
            out = pool.map(work.tiny, range(n), chunksize=chunksize)
        assert out[-1] == n - 1
        return n / (time.perf_counter() - started)

    return run


def cpu_efficiency(n: int, cpu_ms: float) -> Callable[[Any], float]:
    def run(pool: Any) -> float:
        started = time.perf_counter()
        if isinstance(pool, concurrent.futures.Executor):
            list(pool.map(work.burn, [cpu_ms] * n))
        else:
            pool.map(work.burn, [cpu_ms] * n, chunksize=1)
        return n * cpu_ms / 1000 / (2 * (time.perf_counter() - started))

    return run


def pools() -> dict[str, Callable[[], Any]]:
    return {
        "ProcessPoolExecutor(2)": lambda: concurrent.futures.ProcessPoolExecutor(2),
        "multiprocessing.Pool(2)": lambda: multiprocessing.Pool(2),
        "taskmill.Executor(2)": lambda: taskmill.Executor(max_workers=2),
    }


def close(pool: Any) -> None:
    if isinstance(pool, concurrent.futures.Executor):
        pool.shutdown(wait=True)
    else:
        pool.close()
        pool.join()


def measure(run: Measure, rounds: int) -> dict[str, float]:
    """The median of ``rounds`` rounds per system; the systems take turns within each
    round, so a change in the machine's load hits them alike."""
    made = {name: make() for name, make in pools().items()}
    try:
        for pool in made.values():
            if isinstance(pool, concurrent.futures.Executor):
                pool.submit(work.noop).result()
            else:
                pool.apply(work.noop)
        figures: dict[str, list[float]] = {name: [] for name in made}
        for _ in range(rounds):
            for name, pool in made.items():
                figures[name].append(run(pool))
        return {name: statistics.median(values) for name, values in figures.items()}
    finally:
        for pool in made.values():
            close(pool)


def task_map_on_redis(n: int, rounds: int) -> float:
    """Task.map of ``n`` tiny items on Redis with a 2-process worker: items/s."""
    prefix = f"bench-executor-{uuid.uuid4().hex[:8]}"
    url = f"{REDIS}?prefix={prefix}"
    env = {**os.environ, "BENCH_EXECUTOR_REDIS": url, "PYTHONPATH": str(HERE)}
    command = [sys.executable, "-m", "taskmill", "worker", "-A", "executor_tasks", "-c", "2"]
    worker = subprocess.Popen([*command, "--loglevel", "warning"], cwd=HERE, env=env)
    app = taskmill.App("bench_executor", broker=url)
    task = app.task(name="bench_executor.tiny")(work.tiny)
    try:
        task.map(range(1000)).get(timeout=60)  # warm: the worker is up and running
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            values = task.map(range(n)).get(timeout=120)
            rates.append(n / (time.perf_counter() - started))
            assert values[-1] == n - 1
        return statistics.median(rates)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        import redis

        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()
        app.close()


def table(rows: list[tuple[str, dict[str, float], str, str]]) -> str:
    names = list(pools())
    lines = [
        "| workload | " + " | ".join(names) + " | taskmill / ProcessPoolExecutor | target |",
        "|---|" + "---:|" * (len(names) + 1) + "---|",
    ]
    for label, figures, unit, target in rows:
        cells = [_fmt(figures.get(n), unit) for n in names]
        ppe, tm = figures.get(names[0]), figures.get(names[2])
        ratio = f"{tm / ppe:.2f}x" if ppe and tm else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} | {target} |")
    return "\n".join(lines)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "efficiency":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.processor() or platform.machine()}, {cpus} logical cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N, one round")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    quick = args.quick
    rounds = 1 if quick else args.rounds
    n_submit, n_map, n_cpu = (2_000, 20_000, 40) if quick else (10_000, 100_000, 200)
    good = n_map // 8
    started = time.time()
    rows = [
        (
            f"`submit` + `result` of {n_submit:,} no-op calls, calls/s",
            measure(submit_noop(n_submit), rounds),
            "rate",
            "≥ ProcessPoolExecutor",
        ),
        (
            f"`map` of {n_map:,} tiny items, chunksize={good:,}, items/s",
            measure(map_tiny(n_map, good), rounds),
            "rate",
            "≥ ProcessPoolExecutor",
        ),
        (
            f"`map` of {n_map:,} tiny items, chunksize=1, items/s",
            measure(map_tiny(n_map, 1), rounds),
            "rate",
            "≥ ProcessPoolExecutor",
        ),
        (
            f"{n_cpu} x 25 ms CPU (`map`), efficiency",
            measure(cpu_efficiency(n_cpu, 25), rounds),
            "efficiency",
            "≥ 0.95",
        ),
    ]
    try:
        redis_rate = task_map_on_redis(n_map, rounds)
        rows.append(
            (
                f"`Task.map` of {n_map:,} tiny items on Redis, 2 worker processes, items/s",
                {"taskmill.Executor(2)": redis_rate},
                "rate",
                "≥ 1,000,000",
            )
        )
    except Exception as exc:  # no Redis here: the row says so
        print(f"Task.map on Redis skipped: {exc!r}", file=sys.stderr)
    report = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} on "
        f"{machine()}; median of {rounds} round(s), the systems taking turns within each "
        f"round, in one process (load average {os.getloadavg()[0]:.1f} at the end).\n\n"
        "```\n.venv/bin/python benchmarks/executor.py --write-docs\n```\n\n" + table(rows)
    )
    print(report)
    if args.write_docs and not quick:
        write_docs(report)


def write_docs(report: str) -> None:
    section = (
        f"{START}\n## Executor and Task.map beside the standard library\n\n{report}\n\n"
        "Only taskmill has a figure in the Task.map row: the standard library has no "
        "broker. The machine may be shared with other work during a run (the load average "
        "above says how busy it was); the systems take turns, so read the ratios. See "
        "[benchmarks/executor.py](../benchmarks/executor.py).\n"
        f"{END}"
    )
    text = DOC.read_text() if DOC.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
