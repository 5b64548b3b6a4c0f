"""Stopping a worker: the first SIGTERM drains (running tasks finish, prefetched ones go
back at once), a second one stops cold; either way nothing is lost."""

from __future__ import annotations

import signal
import time
from collections import Counter

import faults
from taskmill.brokers.base import Outgoing
from taskmill.message import Message, encode, new_id


def outgoing(task, *args, queue="default"):
    """A message for ``task(*args)``, to enqueue several in one atomic step."""
    msg = Message(id=new_id(), task=task.name, args=args)
    return Outgoing(id=msg.id, queue=queue, body=encode(msg))


def test_sigterm_drains_with_nothing_lost_and_nothing_run_twice(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    first = workspace.start_worker(concurrency=2, grace=10)
    log = workspace.file("executions.log")

    results = [tasks.logged_sleep.delay(log, str(i), 0.2) for i in range(40)]
    workspace.wait_until(lambda: len(faults.executions(log)) >= 4, 15, "some tasks to start")
    first.signal(signal.SIGTERM)
    signalled = time.monotonic()

    assert first.wait(10) == 0
    assert time.monotonic() - signalled < 10  # within the grace
    assert len(faults.executions(log)) < 40  # work was left over for the next worker
    workspace.start_worker(concurrency=2)
    pids = [r.get(timeout=30) for r in results]

    runs = faults.executions(log)
    assert Counter(r.tag for r in runs) == {str(i): 1 for i in range(40)}
    by_tag = {r.tag: r.pid for r in runs}
    assert pids == [by_tag[str(i)] for i in range(40)]


def test_sigterm_releases_prefetched_messages_at_once_for_another_worker(workspace):
    workspace.write_tasks(settings="lease_s=10")  # the slow task keeps its lease throughout
    tasks = workspace.import_tasks()
    broker = tasks.app.broker
    first = workspace.start_worker(concurrency=1, grace=20)
    log = workspace.file("executions.log")
    # fast tasks teach the child to reserve big batches ...
    assert [tasks.square.delay(x).get(timeout=15) for x in range(3)] == [0, 1, 4]
    # ... so it takes a slow task and five quick ones, enqueued together, in one batch
    slow = outgoing(tasks.logged_sleep, log, "slow", 4.0)
    quick = [outgoing(tasks.logged_square, log, x) for x in range(5)]
    broker.enqueue([slow, *quick])
    workspace.wait_until(lambda: faults.executions(log), 10, "the slow task to start")
    assert broker.stats()["default"].in_flight == 6

    first.signal(signal.SIGTERM)
    workspace.wait_until(
        lambda: broker.stats()["default"].in_flight == 1, 2.0, "only the running task held"
    )
    second = workspace.start_worker(concurrency=1)
    quick_results = [tasks.square.AsyncResult(m.id) for m in quick]

    assert [r.get(timeout=15) for r in quick_results] == [x * x for x in range(5)]
    slow_result = tasks.logged_sleep.AsyncResult(slow.id)
    assert slow_result.status == "STARTED"  # the quick ones did not wait for it
    assert first.process.poll() is None
    (second_child,) = second.children()
    assert {r.pid for r in faults.executions(log) if r.tag != "slow"} == {second_child}
    assert first.wait(15) == 0
    assert slow_result.get(timeout=5) == faults.executions(log)[0].pid
    assert [r.tag for r in faults.executions(log)].count("slow") == 1


def test_a_task_outlasting_its_lease_while_draining_keeps_it_and_runs_once(workspace):
    workspace.write_tasks(settings="lease_s=2")
    tasks = workspace.import_tasks()
    first = workspace.start_worker(concurrency=1, grace=20)
    log = workspace.file("executions.log")
    slow = tasks.logged_sleep.delay(log, "slow", 5.0)
    workspace.wait_until(lambda: faults.executions(log), 10, "the slow task to start")

    first.signal(signal.SIGTERM)
    workspace.start_worker(concurrency=1)  # would take the message if its lease ran out
    assert first.wait(15) == 0

    assert [r.tag for r in faults.executions(log)] == ["slow"]
    assert slow.get(timeout=5) == faults.executions(log)[0].pid
    assert "stale lease" not in first.log()


def test_a_second_sigterm_stops_cold_and_the_running_tasks_complete_elsewhere(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    first = workspace.start_worker(concurrency=2, grace=30)
    log = workspace.file("executions.log")

    def started(tag):
        return lambda: any(r.tag == tag for r in faults.executions(log))

    a = tasks.logged_sleep.delay(log, "a", 3.0)
    workspace.wait_until(started("a"), 10, "task a to start")
    b = tasks.logged_sleep.delay(log, "b", 3.0)
    workspace.wait_until(started("b"), 10, "task b to start")
    children = first.children()

    first.signal(signal.SIGTERM)
    first.wait_for_log("draining")
    first.signal(signal.SIGTERM)
    cold = time.monotonic()
    first.wait(3)

    assert time.monotonic() - cold < 3
    assert not any(workspace.alive(pid) for pid in children)
    assert tasks.app.broker.stats()["default"].ready == 2  # released, not lost
    workspace.start_worker(concurrency=2)
    assert a.get(timeout=15) != b.get(timeout=15)
    assert Counter(r.tag for r in faults.executions(log)) == {"a": 2, "b": 2}
