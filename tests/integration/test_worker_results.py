"""A worker runs what clients send and records each outcome: values, delays, retries,
failures with their tracebacks."""

from __future__ import annotations

import time
from collections import Counter

import pytest

import faults
from taskmill import RemoteTraceback


def test_a_thousand_tasks_through_two_children_all_come_back_right(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)

    results = [tasks.square.delay(x) for x in range(1000)]

    assert [r.get(timeout=30) for r in results] == [x**2 for x in range(1000)]
    assert all(r.status == "SUCCESS" for r in results)
    assert worker.process.poll() is None


def test_slow_tasks_are_spread_over_the_children_not_hoarded_by_one(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    log = workspace.file("executions.log")

    results = [tasks.logged_sleep.delay(log, str(i), 0.5) for i in range(4)]
    pids = [r.get(timeout=15) for r in results]

    assert set(pids) == set(worker.children())  # both children ran some


def test_a_countdown_never_runs_the_task_before_it_is_over(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    workspace.start_worker(concurrency=2)

    sent, results = [], []
    for _ in range(5):
        sent.append(time.time())
        results.append(tasks.clock.apply_async(countdown=1))
    ran = [r.get(timeout=15) for r in results]

    for sent_at, ran_at in zip(sent, ran, strict=True):
        assert ran_at >= sent_at + 1.0
        assert ran_at < sent_at + 10.0


def test_a_task_failing_twice_succeeds_on_its_third_attempt_after_growing_backoffs(workspace):
    workspace.write_tasks(
        """
        flaky = app.task(
            name="flaky", retries=3, retry_backoff=0.2, autoretry_for=(ValueError,)
        )(faults.fail_then_succeed)
        """
    )
    tasks = workspace.import_tasks()
    workspace.start_worker()
    log = workspace.file("attempts.log")

    result = tasks.flaky.delay(log, 2)

    assert result.get(timeout=15) == 3
    assert result.status == "SUCCESS"
    attempts = [e.at for e in faults.executions(log)]
    assert len(attempts) == 3
    # equal jitter: each wait is at least half of 0.2 s doubling per retry
    assert attempts[1] - attempts[0] >= 0.1
    assert attempts[2] - attempts[1] >= 0.2


def test_a_task_raising_retry_runs_again_no_sooner_than_the_delay_it_asked_for(workspace):
    workspace.write_tasks('retry_once = app.task(name="retry_once", retries=1)(faults.retry_once)')
    tasks = workspace.import_tasks()
    workspace.start_worker()
    log = workspace.file("attempts.log")

    result = tasks.retry_once.delay(log, 0.3)

    assert result.get(timeout=15) == 2
    first, second = (e.at for e in faults.executions(log))
    assert second - first >= 0.3


def test_a_task_exception_is_a_failure_reraised_with_its_type_and_remote_traceback(workspace):
    workspace.write_tasks(
        """
        raise_value_error = app.task(faults.raise_value_error)
        raise_own_error = app.task(faults.raise_own_error)
        """
    )
    tasks = workspace.import_tasks()
    workspace.start_worker()

    builtin = tasks.raise_value_error.delay(42)
    own = tasks.raise_own_error.delay("it broke")

    with pytest.raises(ValueError, match="bad value 42") as caught:
        builtin.get(timeout=15)
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert builtin.status == "FAILURE"
    assert 'raise ValueError(f"bad value {x}")' in builtin.traceback
    assert "ValueError: bad value 42" in builtin.traceback
    with pytest.raises(faults.TaskBoom, match="it broke"):
        own.get(timeout=15)
    assert tasks.square.delay(3).get(timeout=15) == 9


def test_max_tasks_per_child_replaces_the_child_after_that_many_tasks(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    workspace.start_worker("--max-tasks-per-child", "5", concurrency=1)

    results = [tasks.whoami.delay() for _ in range(20)]
    pids = [r.get(timeout=20) for r in results]

    per_child = Counter(pids)
    assert len(per_child) >= 4  # the child changed at least three times
    assert max(per_child.values()) <= 5
