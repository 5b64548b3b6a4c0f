"""I/O pools in real worker processes: ``async def`` tasks many at a time on a child's
event loop, ``--pool threads`` for blocking calls, and the same time limits, retries,
results, shutdown and crash handling as sync tasks in the default pool."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import pytest

import faults
from taskmill import SoftTimeLimitExceeded, TimeLimitExceeded
from taskmill.brokers.base import Outgoing
from taskmill.message import Message, encode, new_id

ASYNC_TASKS = """
async_square = app.task(faults.async_square)
async_logged_nap = app.task(faults.async_logged_nap)
logged_nap = app.task(faults.logged_nap)
async_hang = app.task(name="async_hang", time_limit=1)(faults.async_hang)
async_block = app.task(name="async_block", time_limit=1)(faults.async_block)
hang_1s = app.task(name="hang_1s", time_limit=1)(faults.hang)
async_flaky = app.task(
    retries=2, retry_backoff=0.05, autoretry_for=(ValueError,)
)(faults.async_fail_then_succeed)
flaky = app.task(retries=2, retry_backoff=0.05, autoretry_for=(ValueError,))(
    faults.fail_then_succeed
)
async_boom = app.task(faults.async_raise_own_error)
async_cancelled = app.task(faults.async_cancel_itself)
async_soft = app.task(name="async_soft", soft_time_limit=0.5)(faults.async_hang)
soft = app.task(name="soft", soft_time_limit=0.5)(faults.sleep_in_steps)
"""


@pytest.fixture
def tasks(workspace):
    workspace.write_tasks(ASYNC_TASKS)
    return workspace.import_tasks()


def outgoing(task, *args):
    """A message for ``task(*args)``, to enqueue several in one atomic step."""
    msg = Message(id=new_id(), task=task.name, args=args)
    return Outgoing(id=msg.id, queue="default", body=encode(msg))


def started(log: str, count: int):
    """The execution log once ``count`` tasks have started."""
    return lambda: (runs := faults.executions(log)) and len(
        [r for r in runs if r.tag.startswith("start:")]
    ) >= count and runs


@pytest.mark.timeout(60)
def test_two_hundred_async_tasks_on_one_child_run_concurrently(workspace, tasks):
    worker = workspace.start_worker(concurrency=1)
    (child,) = worker.children()

    began = time.monotonic()
    results = [tasks.async_square.delay(x, 0.5) for x in range(200)]
    values = [r.get(timeout=30) for r in results]
    took = time.monotonic() - began

    assert values == [x * x for x in range(200)]
    assert took < 5.0  # one at a time would take 100 s
    assert worker.children() == [child]


@pytest.mark.timeout(60)
def test_the_async_limit_caps_the_tasks_in_flight_and_all_complete(workspace, tasks):
    workspace.start_worker("--async-limit", "10", concurrency=1)
    log = workspace.file("executions.log")

    results = [tasks.async_logged_nap.delay(log, str(i), 0.3) for i in range(40)]
    pids = [r.get(timeout=30) for r in results]

    runs = faults.executions(log)
    assert len(set(pids)) == 1
    assert Counter(r.tag for r in runs) == {
        f"{edge}:{i}": 1 for i in range(40) for edge in ("start", "end")
    }
    assert 2 <= faults.most_at_once(runs) <= 10


@pytest.mark.timeout(60)
def test_async_tasks_reserved_with_a_sync_task_run_while_it_blocks_the_main_thread(
    workspace, tasks
):
    workspace.start_worker(concurrency=1)
    log = workspace.file("executions.log")
    tasks.async_square.delay(0).get(timeout=10)  # the child is idle, waiting to reserve

    # one atomic enqueue: the child reserves the sync task and the async ones together
    sync = outgoing(tasks.logged_nap, log, "sync", 3.0)
    naps = [outgoing(tasks.async_logged_nap, log, str(i), 0.5) for i in range(10)]
    tasks.app.broker.enqueue([sync, *naps])
    values = [tasks.app.AsyncResult(m.id).get(timeout=15) for m in [sync, *naps]]

    assert len(set(values)) == 1  # one child ran them all
    ends = {r.tag: r.at for r in faults.executions(log) if r.tag.startswith("end:")}
    assert max(ends[f"end:{i}"] for i in range(10)) < ends["end:sync"]


@pytest.mark.timeout(60)
def test_a_map_of_an_async_task_awaits_each_item(workspace, tasks):
    workspace.start_worker(concurrency=1)

    squares = tasks.async_square.map(range(50), chunksize=10)

    assert squares.get(timeout=20) == [x * x for x in range(50)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_tasks_held_past_their_lease_keep_it_by_heartbeat_and_run_once(workspace, pool):
    workspace.write_tasks(ASYNC_TASKS, settings="lease_s=1")
    tasks = workspace.import_tasks()
    # the second, idle child would take over any lease left to expire
    workspace.start_worker("--pool", pool, "--threads", "2", concurrency=2)
    log = workspace.file("executions.log")

    results = [tasks.async_logged_nap.delay(log, f"a{i}", 2.5) for i in range(3)]
    results += [tasks.logged_nap.delay(log, f"s{i}", 2.5) for i in range(3)]
    [r.get(timeout=30) for r in results]

    starts = Counter(r.tag for r in faults.executions(log) if r.tag.startswith("start:"))
    assert starts == {f"start:{kind}{i}": 1 for kind in "as" for i in range(3)}


@pytest.mark.timeout(60)
def test_the_threads_pool_runs_blocking_tasks_at_once_up_to_its_thread_count(workspace, tasks):
    workspace.start_worker("--pool", "threads", "--threads", "8", concurrency=1)
    log = workspace.file("executions.log")

    began = time.monotonic()
    results = [tasks.logged_nap.delay(log, str(i), 0.25) for i in range(40)]
    pids = [r.get(timeout=30) for r in results]
    took = time.monotonic() - began

    assert took < 4.0  # one at a time would take 10 s
    assert len(set(pids)) == 1
    runs = faults.executions(log)
    assert len(runs) == 80
    assert 2 <= faults.most_at_once(runs) <= 8


@pytest.mark.timeout(60)
def test_an_async_task_past_its_hard_limit_is_cancelled_while_the_child_serves_the_others(
    workspace, tasks
):
    worker = workspace.start_worker(concurrency=1)
    (child,) = worker.children()
    log = workspace.file("executions.log")

    hung = tasks.async_hang.delay(log, 30)
    others = [tasks.async_logged_nap.delay(log, str(i), 2.0) for i in range(5)]
    workspace.wait_until(lambda: faults.executions(log), 10, "the tasks to start")
    began = time.monotonic()

    with pytest.raises(TimeLimitExceeded, match=r"hard time limit of 1\.0s; it was cancelled"):
        hung.get(timeout=15)
    assert time.monotonic() - began < 3.0
    assert [r.get(timeout=15) for r in others] == [child] * 5
    assert worker.children() == [child]
    assert tasks.async_square.delay(3).get(timeout=10) == 9


@pytest.mark.timeout(60)
def test_a_thread_task_past_its_hard_limit_fails_at_once_and_its_child_is_recycled(
    workspace, tasks
):
    worker = workspace.start_worker("--pool", "threads", concurrency=1)
    (child,) = worker.children()
    log = workspace.file("executions.log")

    hung = tasks.hang_1s.delay(log, 30)
    others = [tasks.logged_nap.delay(log, str(i), 2.5) for i in range(3)]
    workspace.wait_until(started(log, 3), 10, "the tasks to start")
    began = time.monotonic()

    with pytest.raises(TimeLimitExceeded, match=r"hard time limit of 1\.0s; its thread"):
        hung.get(timeout=15)
    assert time.monotonic() - began < 3.0
    assert [r.get(timeout=15) for r in others] == [child] * 3  # they finished where they ran
    (replacement,) = workspace.wait_until(
        lambda: (pids := worker.children()) and child not in pids and pids,
        10,
        "the child to be replaced",
    )
    assert not workspace.alive(child)
    assert tasks.logged_nap.delay(log, "after", 0).get(timeout=10) == replacement
    assert len(faults.executions(log)) == 1 + 3 * 2 + 2  # the hung task ran once


@pytest.mark.timeout(60)
def test_a_sync_task_killed_at_its_limit_sends_its_async_neighbours_back_uncounted(
    workspace, tasks
):
    workspace.write_tasks(ASYNC_TASKS, settings="lease_s=2, max_deliveries=1")
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=1)
    (child,) = worker.children()
    log = workspace.file("executions.log")

    naps = [outgoing(tasks.async_logged_nap, log, str(i), 3.0) for i in range(5)]
    hung = outgoing(tasks.hang_1s, log, 30)
    tasks.app.broker.enqueue([*naps, hung])

    with pytest.raises(TimeLimitExceeded, match="its worker process was killed"):
        tasks.app.AsyncResult(hung.id).get(timeout=15)
    pids = [tasks.app.AsyncResult(m.id).get(timeout=20) for m in naps]

    # with max_deliveries=1 a counted redelivery would have dead-lettered them
    (replacement,) = worker.wait_for_children(1)
    assert pids == [replacement] * 5 and replacement != child
    assert tasks.app.broker.dead_letters() == []


@pytest.mark.timeout(60)
def test_max_tasks_per_child_recycles_children_running_async_tasks(workspace, tasks):
    workspace.start_worker("--max-tasks-per-child", "10", concurrency=1)
    log = workspace.file("executions.log")

    results = [tasks.async_logged_nap.delay(log, str(i), 0.1) for i in range(30)]
    pids = [r.get(timeout=30) for r in results]

    assert len(set(pids)) >= 3
    assert max(Counter(pids).values()) <= 10
    assert len(faults.executions(log)) == 60  # each ran once


@pytest.mark.timeout(60)
def test_an_async_task_blocking_its_event_loop_is_killed_by_the_supervisor(workspace, tasks):
    worker = workspace.start_worker(concurrency=1)
    (child,) = worker.children()
    log = workspace.file("executions.log")

    blocked = tasks.async_block.delay(log, 30)
    (run,) = workspace.wait_until(lambda: faults.executions(log), 10, "the task to start")

    with pytest.raises(TimeLimitExceeded, match="its worker process was killed"):
        blocked.get(timeout=15)
    assert time.time() - run.at < 1.0 + 2.0 + 2.0  # the limit, the backstop, a margin
    assert not workspace.alive(child)
    (replacement,) = worker.wait_for_children(1)
    assert tasks.async_square.delay(4).get(timeout=10) == 16
    assert replacement != child


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_async_and_thread_tasks_retry_until_they_succeed(workspace, tasks, pool):
    workspace.start_worker("--pool", pool, concurrency=1)
    async_log, sync_log = workspace.file("async.log"), workspace.file("sync.log")

    async_result = tasks.async_flaky.delay(async_log, 2)
    sync_result = tasks.flaky.delay(sync_log, 2)

    assert async_result.get(timeout=20) == 3
    assert sync_result.get(timeout=20) == 3
    assert async_result.status == sync_result.status == "SUCCESS"
    assert len(faults.executions(async_log)) == len(faults.executions(sync_log)) == 3


@pytest.mark.timeout(60)
def test_soft_time_limits_interrupt_async_and_thread_tasks_and_the_child_goes_on(
    workspace, tasks
):
    worker = workspace.start_worker("--pool", "threads", concurrency=1)
    (child,) = worker.children()
    log = workspace.file("executions.log")

    began = time.monotonic()
    in_loop, in_thread = tasks.async_soft.delay(log, 30), tasks.soft.delay(log, 30)

    with pytest.raises(SoftTimeLimitExceeded):
        in_loop.get(timeout=15)
    with pytest.raises(SoftTimeLimitExceeded):
        in_thread.get(timeout=15)
    assert time.monotonic() - began < 3.0
    assert tasks.logged_nap.delay(log, "after", 0).get(timeout=10) == child
    assert worker.children() == [child]


@pytest.mark.timeout(60)
def test_an_async_tasks_exception_is_raised_by_get_with_its_own_type(workspace, tasks):
    workspace.start_worker(concurrency=1)

    result = tasks.async_boom.delay("from a coroutine")

    with pytest.raises(faults.TaskBoom, match="from a coroutine") as caught:
        result.get(timeout=15)
    assert "async_raise_own_error" in str(caught.value.__cause__)
    assert result.status == "FAILURE"


@pytest.mark.timeout(60)
def test_an_async_task_that_cancels_itself_fails_once_and_is_not_delivered_again(
    workspace, tasks
):
    workspace.start_worker(concurrency=1)

    result = tasks.async_cancelled.delay()

    with pytest.raises(asyncio.CancelledError, match="gave up"):
        result.get(timeout=15)
    assert tasks.async_square.delay(5).get(timeout=10) == 25
    assert tasks.app.broker.dead_letters() == []


@pytest.mark.timeout(60)
def test_sigterm_with_async_tasks_in_flight_drains_them_and_gives_back_the_rest(
    workspace, tasks
):
    first = workspace.start_worker("--async-limit", "50", concurrency=1, grace=10)
    log = workspace.file("executions.log")

    results = [tasks.async_logged_nap.delay(log, str(i), 1.0) for i in range(80)]
    workspace.wait_until(started(log, 50), 15, "50 tasks in flight")
    first.signal(signal.SIGTERM)

    assert first.wait(10) == 0
    in_first = len(faults.executions(log)) // 2
    assert 50 <= in_first < 80  # the rest was given back, not run
    assert tasks.app.broker.stats()["default"].in_flight == 0
    (second_child,) = workspace.start_worker(concurrency=1).children()
    pids = [r.get(timeout=30) for r in results]

    runs = faults.executions(log)
    assert Counter(r.tag for r in runs) == {
        f"{edge}:{i}": 1 for i in range(80) for edge in ("start", "end")
    }
    by_tag = {r.tag.removeprefix("start:"): r.pid for r in runs if r.tag.startswith("start:")}
    assert pids == [by_tag[str(i)] for i in range(80)]
    assert Counter(pids) == {by_tag["0"]: in_first, second_child: 80 - in_first}


@pytest.mark.timeout(60)
def test_sigterm_in_the_threads_pool_lets_running_threads_finish_and_gives_back_the_rest(
    workspace, tasks
):
    first = workspace.start_worker("--pool", "threads", "--threads", "4", grace=10)
    log = workspace.file("executions.log")

    results = [tasks.logged_nap.delay(log, str(i), 1.0) for i in range(20)]
    workspace.wait_until(started(log, 4), 15, "4 threads busy")
    first.signal(signal.SIGTERM)

    assert first.wait(10) == 0
    runs = faults.executions(log)
    assert len(runs) % 2 == 0 and 4 <= len(runs) // 2 < 20  # each one started, finished
    workspace.start_worker("--pool", "threads", "--threads", "4")
    [r.get(timeout=30) for r in results]

    assert Counter(r.tag for r in faults.executions(log)) == {
        f"{edge}:{i}": 1 for i in range(20) for edge in ("start", "end")
    }


@pytest.mark.timeout(60)
def test_a_child_killed_with_async_tasks_in_flight_loses_none_of_them(workspace, tasks):
    worker = workspace.start_worker(concurrency=1)
    log = workspace.file("executions.log")

    results = [tasks.async_logged_nap.delay(log, str(i), 1.5) for i in range(20)]
    runs = workspace.wait_until(started(log, 20), 10, "20 tasks in flight")
    victim = runs[0].pid
    os.kill(victim, signal.SIGKILL)

    pids = [r.get(timeout=30) for r in results]

    (replacement,) = worker.wait_for_children(1)
    assert replacement != victim
    assert pids == [replacement] * 20
    starts = Counter(r.tag for r in faults.executions(log) if r.tag.startswith("start:"))
    assert starts == {f"start:{i}": 2 for i in range(20)}  # once in each child
    assert tasks.app.broker.dead_letters() == []
