"""Worker processes die: killed from outside, by their own task, at a time limit, or with
their supervisor. Nothing is lost, poison does not loop, and no process is orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import faults
from taskmill import TimeLimitExceeded, WorkerLost


def test_a_child_killed_mid_task_is_replaced_and_the_task_runs_again_with_one_result(
    workspace,
):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")

    result = tasks.logged_sleep.delay(log, "victim", 2.0)
    (first,) = workspace.wait_until(lambda: faults.executions(log), 10, "the task to start")
    assert first.pid in worker.children()
    os.kill(first.pid, signal.SIGKILL)

    returned_pid = result.get(timeout=20)

    runs = faults.executions(log)
    assert [r.tag for r in runs] == ["victim", "victim"]
    assert returned_pid == runs[1].pid != first.pid  # the result is the second run's
    assert result.status == "SUCCESS"
    children = worker.wait_for_children(2)
    assert first.pid not in children
    assert tasks.app.broker.dead_letters() == []
    assert tasks.app.broker.stats() == {}  # acknowledged: nothing left in the queue


@pytest.mark.parametrize("fault", ["sigkill_self", "exit_abruptly"])
def test_a_task_that_kills_its_worker_every_time_is_dead_lettered_after_three_deliveries(
    workspace, fault
):
    workspace.write_tasks(f"poison = app.task(faults.{fault})\n")
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")

    poison = tasks.poison.delay(log)
    others = [tasks.square.delay(x) for x in range(20)]

    with pytest.raises(WorkerLost, match="worker lost: the worker died") as caught:
        poison.get(timeout=30)
    assert "3 deliveries" in str(caught.value)
    assert poison.status == "FAILURE"
    assert [r.get(timeout=15) for r in others] == [x * x for x in range(20)]
    assert len(faults.executions(log)) == 3
    # the result is stored a moment before the message moves to the dead-letter store
    (dead,) = workspace.wait_until(tasks.app.broker.dead_letters, 5, "the dead letter")
    assert dead.id == poison.id
    assert "worker" in dead.reason
    assert "died" in dead.reason
    worker.wait_for_children(2)


def test_a_task_past_its_hard_time_limit_is_killed_within_a_second_and_its_child_replaced(
    workspace,
):
    workspace.write_tasks('hang_1s = app.task(name="hang_1s", time_limit=1)(faults.hang)\n')
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=1)
    log = workspace.file("executions.log")

    result = tasks.hang_1s.delay(log, 30)
    (started,) = workspace.wait_until(lambda: faults.executions(log), 10, "the task to start")
    with pytest.raises(TimeLimitExceeded, match=r"hard time limit of 1\.0s"):
        result.get(timeout=15)
    stopped_after = time.time() - started.at

    assert 0.9 <= stopped_after <= 1.0 + 1.0 + 0.25  # limit + 1 s, + result pickup
    assert result.status == "FAILURE"
    assert not workspace.alive(started.pid)
    (replacement,) = worker.wait_for_children(1)
    assert replacement != started.pid
    assert tasks.whoami.delay().get(timeout=15) == replacement


def test_a_task_running_past_its_lease_keeps_it_by_heartbeat_and_runs_once(workspace):
    workspace.write_tasks(settings="lease_s=1")
    tasks = workspace.import_tasks()
    workspace.start_worker(concurrency=2)  # the idle child would take an expired lease
    log = workspace.file("executions.log")

    result = tasks.logged_sleep.delay(log, "long", 3.5)

    assert result.get(timeout=15) == faults.executions(log)[0].pid
    assert [r.tag for r in faults.executions(log)] == ["long"]


def test_children_never_outlive_a_killed_supervisor(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")
    tasks.logged_sleep.delay(log, "busy", 30)
    workspace.wait_until(lambda: faults.executions(log), 10, "the task to start")
    children = worker.children()
    assert len(children) == 2  # one busy, one idle

    worker.signal(signal.SIGKILL)
    worker.wait(5)

    workspace.wait_until(
        lambda: not any(workspace.alive(pid) for pid in children), 2.0, "the children to exit"
    )


OPEN_AT_ONCE = """
import sys, time
from taskmill.brokers import open_broker
start, rounds, folder = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
failures = 0
for n in range(rounds):
    while time.time() < start + n * 0.15:
        pass
    try:
        open_broker(f"sqlite:///{folder}/round-{n}.db").close()
    except Exception as exc:
        failures += 1
        print(f"round {n}: {exc}", file=sys.stderr)
sys.exit(1 if failures else 0)
"""


def test_many_processes_opening_a_brand_new_database_at_once_all_succeed(workspace):
    # what a worker's supervisor and children do on a fresh taskmill.db: open it together
    start = time.time() + 2.0
    opener = [sys.executable, "-c", OPEN_AT_ONCE, str(start), "30", str(workspace.path)]
    processes = [
        workspace.reaper.watch(subprocess.Popen(opener, stderr=subprocess.PIPE))
        for _ in range(8)
    ]

    errors = [p.communicate(timeout=30)[1].decode() for p in processes]

    assert "".join(errors) == ""
    assert [p.returncode for p in processes] == [0] * 8
