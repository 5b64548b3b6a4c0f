"""The measurements, free of any system's details: each takes a running System.

| key | what                                                   | workers | figure             |
|-----|--------------------------------------------------------|---------|--------------------|
| W1  | N no-op tasks sent one call at a time, results awaited | 2       | tasks/s end to end |
| W1m | the same N sent with one batch call (``Task.map``)     | 2       | tasks/s            |
| W2  | sequential send -> wait round trips                    | 1       | p50 / p99, ms      |
| W3  | N tasks of 25 ms CPU each (busy loop, thread CPU time) | 2       | parallel efficiency|
| W5  | the idle worker tree (supervisor + children)           | 2       | USS summed, MiB    |

Every workload except W5 first runs a short warm-up (not timed), so imports, connections
and first-fork costs are paid before the clock starts, the same for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from systems import System, WorkerSpec

__all__ = ["FULL", "QUICK", "WORKLOADS", "Params", "Workload", "percentile"]


@dataclass(frozen=True, slots=True)
class Params:
    w1_tasks: int = 10_000
    w2_round_trips: int = 300
    w3_tasks: int = 200
    w3_cpu_ms: float = 25.0
    w3_rounds: int = 3
    w5_idle_s: float = 3.0
    warmup: int = 20


FULL = Params()
QUICK = Params(
    w1_tasks=500, w2_round_trips=30, w3_tasks=20, w3_rounds=1, w5_idle_s=1.0, warmup=5
)

Metrics = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    workers: WorkerSpec
    run: Callable[[System, Params], Metrics]
    #: seconds the whole cell (worker start, warm-up, measurement, stop) may take
    timeout: Callable[[Params], float]


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 300 is a sample that happened)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _warm_up(system: System, n: int) -> None:
    system.wait_all([system.send_noop() for _ in range(n)], timeout=60)


def w1_throughput(system: System, p: Params) -> Metrics:
    _warm_up(system, p.warmup)
    started = time.perf_counter()
    handles = system.send_many(p.w1_tasks)
    sent = time.perf_counter()
    system.wait_all(handles, timeout=p.w1_tasks / 20 + 60)
    took = time.perf_counter() - started
    return {
        "tasks_per_s": p.w1_tasks / took,
        "seconds": took,
        "send_per_s": p.w1_tasks / (sent - started),
        "tasks": p.w1_tasks,
    }


#: W1m's second size: the issue's 100,000 tiny items
W1M_LARGE = 100_000


def w1m_throughput_batched(system: System, p: Params) -> Metrics:
    # W1m: the same count as W1, and 100,000 items, each sent with one batch call;
    # systems without one are n/a.
    _warm_up(system, p.warmup)
    rates = []
    for n in (p.w1_tasks, W1M_LARGE):
        started = time.perf_counter()
        batch = system.send_map(n)
        values = system.wait_batch(batch, timeout=n / 20 + 60)
        took = time.perf_counter() - started
        if len(values) != n:
            raise RuntimeError(f"W1m: {len(values)} results for {n} tasks")
        rates.append(n / took)
    return {"tasks_per_s": rates[0], "items_per_s_large": rates[1], "tasks": p.w1_tasks,
            "large": W1M_LARGE}


def w2_latency(system: System, p: Params) -> Metrics:
    _warm_up(system, p.warmup)
    samples = []
    for _ in range(p.w2_round_trips):
        started = time.perf_counter()
        system.wait(system.send_noop(), timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": sum(samples) / len(samples),
        "round_trips": len(samples),
    }


def w3_cpu(system: System, p: Params) -> Metrics:
    # A few rounds on the same workers, the median reported: one round is short enough
    # (2.5 s ideal) for a single scheduling hiccup to move it by several points.
    _warm_up(system, p.warmup)
    processes = W3.workers.processes
    ideal = p.w3_tasks * p.w3_cpu_ms / 1000
    walls = []
    for _ in range(p.w3_rounds):
        started = time.perf_counter()
        handles = [system.send_burn(p.w3_cpu_ms) for _ in range(p.w3_tasks)]
        system.wait_all(handles, timeout=ideal + 60)
        walls.append(time.perf_counter() - started)
    took = sorted(walls)[len(walls) // 2]
    return {
        "efficiency": ideal / (processes * took),
        "seconds": took,
        "ideal_seconds": ideal / processes,
        "rounds_efficiency": [ideal / (processes * w) for w in walls],
        "tasks": p.w3_tasks,
    }


def w5_idle_memory(system: System, p: Params) -> Metrics:
    assert system.group is not None
    time.sleep(p.w5_idle_s)
    uss, count = system.group.uss_bytes()
    return {"uss_mib": uss / 2**20, "processes": count}


W1 = Workload("W1", "throughput, .delay() loop", WorkerSpec(2, "throughput"), w1_throughput,
              lambda p: p.w1_tasks / 20 + 120)
W1M = Workload("W1m", "throughput, batch send", WorkerSpec(2, "throughput"),
               w1m_throughput_batched, lambda p: p.w1_tasks / 20 + 120)
W2 = Workload("W2", "round-trip latency", WorkerSpec(1, "latency"), w2_latency,
              lambda p: p.w2_round_trips * 0.5 + 120)
W3 = Workload("W3", "CPU-bound parallel efficiency", WorkerSpec(2, "cpu"), w3_cpu,
              lambda p: p.w3_rounds * p.w3_tasks * p.w3_cpu_ms / 1000 * 2 + 120)
W5 = Workload("W5", "idle memory of the worker tree", WorkerSpec(2, "idle"), w5_idle_memory,
              lambda p: p.w5_idle_s + 90)

WORKLOADS: dict[str, Workload] = {w.key: w for w in (W1, W1M, W2, W3, W5)}
