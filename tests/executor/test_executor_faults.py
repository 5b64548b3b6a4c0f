"""Worker processes die under an Executor, and it goes on: killed calls run again or fail
with WorkerLost, time limits kill, retries retry, and every other call completes."""

from __future__ import annotations

import os
import signal
import time

import executor_calls as calls
import pytest

from integration.conftest import wait_until
from taskmill import TimeLimitExceeded, WorkerLost


def test_kill_9_of_a_worker_during_map_of_1000_calls_loses_nothing(make_executor, tmp_path):
    ex = make_executor()
    log = str(tmp_path / "calls.log")
    results = ex.map(calls.logged_square, [log] * 1000, range(1000))
    first = [next(results) for _ in range(100)]
    victims = make_executor.worker_pids(ex)
    assert victims
    os.kill(victims[0], signal.SIGKILL)

    rest = list(results)

    assert first + rest == [x * x for x in range(1000)]
    ran = {int(line.split()[0]) for line in (tmp_path / "calls.log").read_text().splitlines()}
    assert ran == set(range(1000))
    wait_until(lambda: len(make_executor.worker_pids(ex)) == 2, 10, "a replacement worker")
    assert victims[0] not in make_executor.worker_pids(ex)
    assert ex.submit(calls.square, 12).result(timeout=30) == 144


def test_a_call_that_kills_its_worker_every_time_fails_with_worker_lost(make_executor):
    ex = make_executor()
    poison = ex.submit(calls.sigkill_self)
    others = [ex.submit(calls.square, x) for x in range(50)]
    with pytest.raises(WorkerLost, match="died on each of 3 deliveries"):
        poison.result(timeout=40)
    assert [f.result(timeout=30) for f in others] == [x * x for x in range(50)]


def test_a_call_over_the_time_limit_is_killed_and_the_others_complete(make_executor):
    ex = make_executor(time_limit=1.0)
    hung = ex.submit(calls.nap, 60.0)
    others = [ex.submit(calls.square, x) for x in range(20)]
    with pytest.raises(TimeLimitExceeded, match=r"hard time limit of 1\.0s"):
        hung.result(timeout=30)
    assert [f.result(timeout=30) for f in others] == [x * x for x in range(20)]


def test_retries_run_a_failing_call_again(make_executor, tmp_path):
    ex = make_executor(retries=1)
    assert ex.submit(calls.fail_once, str(tmp_path / "once"), 7).result(timeout=30) == 7
    assert list(ex.map(calls.fail_once, [str(tmp_path / "chunk")] * 3, [1, 2, 3], chunksize=3)) == [
        1,
        2,
        3,
    ]


def test_without_retries_a_failing_call_fails(make_executor, tmp_path):
    ex = make_executor()
    with pytest.raises(RuntimeError, match="first attempt"):
        ex.submit(calls.fail_once, str(tmp_path / "once"), 7).result(timeout=30)


@pytest.mark.parametrize("executor_kind", ["local"])
def test_kill_9_of_the_local_supervisor_restarts_it(make_executor):
    ex = make_executor()
    assert ex.submit(calls.square, 2).result(timeout=30) == 4
    pool = ex._dispatcher.pool
    old = pool.process.pid
    os.kill(old, signal.SIGKILL)
    futures = [ex.submit(calls.square, x) for x in range(100)]
    assert [f.result(timeout=40) for f in futures] == [x * x for x in range(100)]
    assert pool.process.pid != old


@pytest.mark.parametrize("executor_kind", ["local"])
def test_a_worker_killed_holding_a_chunk_runs_the_chunk_again(make_executor, tmp_path):
    ex = make_executor(max_workers=1)
    log = str(tmp_path / "calls.log")
    results = ex.map(calls.logged_square, [log] * 400, range(400), chunksize=200)
    wait_until(lambda: os.path.exists(log), 20, "the first chunk to start")
    time.sleep(0.05)
    os.kill(make_executor.worker_pids(ex)[0], signal.SIGKILL)
    assert list(results) == [x * x for x in range(400)]
