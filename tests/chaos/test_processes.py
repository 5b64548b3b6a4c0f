"""Worker processes killed from outside, over and over, while they work: nothing is lost,
every task has exactly one result, re-runs are bounded by the kills, and what was killed
comes back (a child within two seconds; a supervisor's children die with it)."""

from __future__ import annotations

import math
import os
import random
import signal
import time

import pytest
from ledger import tally
from runs import NAP_TASK, send_naps, time_until, wait_all_final

from taskmill.worker.holdings import FLUSH_SECONDS

#: the children a storm worker runs
STORM_CHILDREN = 2
STORM_INTERVAL = 0.5


def duplicates_allowed(kills: int, nap: float) -> int:
    """Re-runs a kill may cause: the task it interrupted, and — for tasks shorter than a
    child's result flush interval — the ones that finished since its last flush, whose
    results it held a few milliseconds more to write them together."""
    if nap >= FLUSH_SECONDS:  # a slow task's predecessors are flushed before it starts
        return kills
    return kills * (1 + math.ceil(FLUSH_SECONDS / nap))


@pytest.mark.parametrize(
    ("scenario", "tasks_sent", "nap"),
    [
        pytest.param("child kill storm", 2_000, 0.005, id="quick"),
        pytest.param("child kill storm", 10_000, 0.005, id="full", marks=pytest.mark.chaos),
        pytest.param(
            "child kill storm, sub-ms tasks",
            20_000,
            0.0005,
            id="full-fast-tasks",
            marks=pytest.mark.chaos,
        ),
    ],
)
@pytest.mark.timeout(600)
def test_child_kill_storm_loses_nothing_and_each_child_is_replaced_within_two_seconds(
    workspace, figures, scenario, tasks_sent, nap
):
    workspace.write_tasks(NAP_TASK)
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=STORM_CHILDREN)
    log = workspace.file("executions.log")
    rng = random.Random(tasks_sent)
    kills: list[int] = []
    replacements: list[float] = []

    def kill_a_child() -> None:
        next_kill = time.monotonic() + STORM_INTERVAL
        before = worker.children()
        victim = rng.choice(before)
        os.kill(victim, signal.SIGKILL)
        kills.append(victim)

        def replaced() -> bool:
            now = worker.children()
            return len(now) == STORM_CHILDREN and victim not in now

        replacements.append(time_until(replaced, 5.0))
        time.sleep(max(0.0, next_kill - time.monotonic()))

    sent = send_naps(tasks.nap_square, log, range(tasks_sent), nap)
    took = wait_all_final(tasks.app, sent.expected, 300, between=kill_a_child)

    t = tally(tasks.app, sent.expected, log, sent.tags)
    slowest = max(replacements)
    allowed = duplicates_allowed(len(kills), nap)
    figures.record(
        scenario,
        load=f"{tasks_sent:,} tasks of {nap * 1000:g} ms, {STORM_CHILDREN} children",
        faults=f"{len(kills)} x kill -9 of a random child, one every {STORM_INTERVAL} s",
        tally=t,
        duplicates=f"{t.duplicates} (≤ {allowed} allowed)",
        recovery=f"replacement child ≤ {slowest:.2f} s (max); all done in {took:.0f} s",
    )
    t.check(max_duplicates=allowed)
    assert len(kills) >= 5
    assert slowest <= 2.0, f"a replacement took {slowest:.2f}s: {replacements}"
    assert worker.process.poll() is None
    assert tasks.app.broker.dead_letters() == []


SUPERVISOR_RUNS = {
    # tasks, seconds each task sleeps, seconds between kills of the supervisor
    "quick": (400, 0.02, 1.5),
    "full": (2_000, 0.1, 10.0),
}


@pytest.mark.parametrize(
    "run", [pytest.param("quick"), pytest.param("full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(600)
def test_supervisor_killed_repeatedly_loses_nothing_and_leaves_no_orphans(workspace, figures, run):
    tasks_sent, nap, interval = SUPERVISOR_RUNS[run]
    workspace.write_tasks(NAP_TASK)
    tasks = workspace.import_tasks()
    steady = workspace.start_worker(concurrency=2)
    victim = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")
    orphan_exits: list[float] = []
    restarts: list[float] = []
    next_kill = time.monotonic() + interval

    def kill_the_supervisor() -> None:
        nonlocal victim, next_kill
        time.sleep(0.05)
        if time.monotonic() < next_kill:
            return
        children = victim.children()
        victim.signal(signal.SIGKILL)
        orphan_exits.append(
            time_until(lambda: not any(workspace.alive(pid) for pid in children), 5.0)
        )
        victim.wait(5)
        # a process manager restarts it
        started = time.monotonic()
        victim = workspace.start_worker(concurrency=2)
        restarts.append(time.monotonic() - started)
        next_kill = time.monotonic() + interval

    sent = send_naps(tasks.nap_square, log, range(tasks_sent), nap)
    took = wait_all_final(tasks.app, sent.expected, 400, between=kill_the_supervisor)

    t = tally(tasks.app, sent.expected, log, sent.tags)
    kills = len(orphan_exits)
    figures.record(
        "supervisor kill",
        load=f"{tasks_sent:,} tasks of {nap * 1000:g} ms, 2 workers x 2 children",
        faults=f"{kills} x kill -9 of one worker's supervisor, one every {interval:g} s "
        "(restarted each time)",
        tally=t,
        recovery=f"its children gone ≤ {max(orphan_exits) * 1000:.0f} ms after the kill "
        f"(max); all done in {took:.0f} s",
    )
    t.check(max_duplicates=kills * 2)  # at most the task each of its children was running
    assert kills >= 2
    assert max(orphan_exits) <= 1.0, orphan_exits
    assert steady.process.poll() is None
    assert tasks.app.broker.dead_letters() == []
