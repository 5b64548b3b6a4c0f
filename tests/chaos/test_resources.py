"""Tasks that take too much: memory without bound, or time while ignoring SIGTERM. The
worker stops them (``--max-memory-per-child``, the hard time limit), replaces only the
child that ran them, and every other task completes."""

from __future__ import annotations

import re
import time

import pytest
from ledger import tally
from runs import NAP_TASK, send_naps, wait_all_final

import faults
from taskmill import MemoryLimitExceeded, TimeLimitExceeded

LIMIT_MIB = 200

RESOURCE_TASKS = (
    NAP_TASK
    + """
import signal as _signal

_leaked = []

@app.task(name="hog")
def hog(log, mib_per_step):
    faults.record(log, "hog")
    held = []
    while True:
        held.append(b"x" * (mib_per_step << 20))
        _time.sleep(0.01)

@app.task(name="leak")
def leak(mib, later=0.0):
    # keep mib MiB for good: now, or `later` seconds after the task has returned
    import threading as _threading

    def grab():
        _leaked.append(b"x" * (mib << 20))

    if not later:
        grab()
        return len(_leaked)
    _threading.Timer(later, grab).start()
    return len(_leaked) + 1

@app.task(name="stubborn", time_limit=1)
def stubborn(log):
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    faults.record(log, "stubborn")
    _time.sleep(60)
"""
)

MEMORY_RUNS = {"quick": (1, 300), "full": (5, 3_000)}


@pytest.mark.parametrize(
    "run", [pytest.param("quick"), pytest.param("full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(300)
def test_a_task_eating_memory_is_stopped_and_only_its_child_replaced(workspace, figures, run):
    hogs, naps = MEMORY_RUNS[run]
    workspace.write_tasks(RESOURCE_TASKS)
    tasks = workspace.import_tasks()
    worker = workspace.start_worker("--max-memory-per-child", str(LIMIT_MIB), concurrency=2)
    log = workspace.file("executions.log")
    stopped_after = []
    used: list[int] = []
    replaced = 0

    sent = send_naps(tasks.nap_square, log, range(naps), 0.005)
    for _ in range(hogs):
        before = set(worker.children())
        result = tasks.hog.delay(log, 5)
        with pytest.raises(MemoryLimitExceeded, match=f"memory limit of {LIMIT_MIB} MiB") as e:
            result.get(timeout=60)
        used.append(int(re.search(r"used (\d+) MiB", str(e.value)).group(1)))
        started = [e for e in faults.executions(log) if e.tag == "hog"][-1]
        stopped_after.append(time.time() - started.at)
        after = set(worker.wait_for_children(2))
        assert started.pid in before
        assert not workspace.alive(started.pid)
        assert before - after == {started.pid}  # the other child still runs
        replaced += 1
    wait_all_final(tasks.app, sent.expected, 120)

    t = tally(tasks.app, sent.expected, log, sent.tags)
    figures.record(
        "memory hog",
        load=f"{naps:,} tasks of 5 ms, 2 children, --max-memory-per-child {LIMIT_MIB}",
        faults=f"{hogs} task(s) allocating 500 MiB/s without bound",
        tally=t,
        recovery=f"hog failed with MemoryLimitExceeded ≤ {max(stopped_after):.2f} s after it "
        f"started (max), at ≤ {max(used)} MiB; {replaced} child(ren) replaced, the other never",
    )
    t.check()
    assert worker.process.poll() is None


def test_a_child_over_the_memory_limit_between_tasks_is_recycled_with_no_failure(workspace):
    workspace.write_tasks(RESOURCE_TASKS)
    tasks = workspace.import_tasks()
    worker = workspace.start_worker("--max-memory-per-child", str(LIMIT_MIB), concurrency=1)
    (first,) = worker.children()

    # 180 MiB + the child; the last 60 MiB after its task returned, so that the child
    # crosses the limit between tasks (allocated during one, a tick could land first)
    held = [tasks.leak.delay(60, later).get(timeout=15) for later in (0, 0, 0.3)]

    assert held == [1, 2, 3]
    worker.wait_for_log("over the limit of 200 MiB: recycling it")
    (replacement,) = workspace.wait_until(
        lambda: (now := worker.children()) and now != [first] and now, 10, "a new child"
    )
    assert tasks.leak.delay(1).get(timeout=15) == 1  # a fresh child, nothing leaked yet
    assert tasks.whoami.delay().get(timeout=15) == replacement
    assert "MemoryLimitExceeded" not in worker.log()


def test_a_memory_limit_below_a_fresh_childs_size_is_refused_at_start(workspace):
    workspace.write_tasks(RESOURCE_TASKS)

    done = workspace.run_cli("worker", "-A", "tasks", "--max-memory-per-child", "1")

    assert done.returncode == 2
    assert "--max-memory-per-child 1 MiB is below what a new worker child uses" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("stubborn", "others"),
    [pytest.param(1, 50, id="quick"), pytest.param(5, 2_000, id="full", marks=pytest.mark.chaos)],
)
@pytest.mark.timeout(300)
def test_a_task_ignoring_sigterm_is_killed_at_its_hard_time_limit(
    workspace, figures, stubborn, others
):
    workspace.write_tasks(RESOURCE_TASKS)
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")
    stops = []

    sent = send_naps(tasks.nap_square, log, range(others), 0.005)
    for _ in range(stubborn):
        result = tasks.stubborn.delay(log)
        with pytest.raises(TimeLimitExceeded, match=r"hard time limit of 1\.0s"):
            result.get(timeout=30)
        started = [e for e in faults.executions(log) if e.tag == "stubborn"][-1]
        stops.append(time.time() - started.at)
        assert not workspace.alive(started.pid)
        assert started.pid not in worker.wait_for_children(2)
    wait_all_final(tasks.app, sent.expected, 120)

    t = tally(tasks.app, sent.expected, log, sent.tags)
    figures.record(
        "task ignoring SIGTERM",
        load=f"{others:,} tasks of 5 ms, 2 children",
        faults=f"{stubborn} task(s) with time_limit=1 s that ignore SIGTERM and sleep 60 s",
        tally=t,
        recovery=f"each killed, TimeLimitExceeded ≤ {max(stops):.2f} s after it started (max); "
        "its child replaced",
    )
    t.check()
    assert max(stops) <= 2.0
    assert worker.process.poll() is None
