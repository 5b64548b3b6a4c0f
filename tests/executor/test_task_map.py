"""Task.map / starmap against real workers, on the embedded broker and on Redis: results
in order, progress, counts, revoke, and a worker killed halfway."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

import faults
from redis_server import delete_prefix, redis_url_or_skip

EXTRA = """
from taskmill import update_progress


@app.task
def stepper(steps, pause):
    for i in range(steps):
        update_progress(i + 1, steps)
        time.sleep(pause)
    return steps


@app.task
def logged_cube(log, x):
    faults.record(log, x)
    time.sleep(0.001)
    return x ** 3
"""


@pytest.fixture(params=["sqlite", "redis"])
def tasks(request, workspace):
    if request.param == "sqlite":
        settings = "lease_s=2"
    else:
        url = redis_url_or_skip(db=15)
        prefix = f"tmmap-{uuid.uuid4().hex[:12]}"
        settings = f"broker={url + '?prefix=' + prefix!r}, lease_s=2"
        request.addfinalizer(lambda: delete_prefix(url, prefix))
    workspace.write_tasks("import time\n" + EXTRA, settings=settings)
    module = workspace.import_tasks()
    module.workspace = workspace
    return module


def test_map_of_ten_thousand_items_comes_back_in_order(tasks, capsys):
    tasks.workspace.start_worker(concurrency=2)
    results = tasks.square.map(range(10_000))
    assert len(results) == 10_000
    assert results.get(timeout=30, progress=True) == [x * x for x in range(10_000)]
    assert "10000/10000" in capsys.readouterr().err
    assert results.counts() == {"SUCCESS": 10_000}
    assert sorted(results.as_completed(timeout=10)) == [x * x for x in range(10_000)]


def test_a_task_reports_progress_the_client_reads(tasks):
    tasks.workspace.start_worker(concurrency=1)
    result = tasks.stepper.delay(20, 0.05)
    seen = tasks.workspace.wait_until(lambda: result.progress, 10, "a progress report")
    assert seen.total == 20 and 1 <= seen.done <= 20
    assert result.get(timeout=10) == 20
    assert result.progress.done == 20


def test_counts_by_state_while_running_and_revoke_of_the_rest(tasks):
    results = tasks.square.map(range(100), chunksize=10)
    assert results.counts() == {"PENDING": 100}
    assert results.revoke() == 100
    tasks.workspace.start_worker(concurrency=1)
    assert results.counts() == {"FAILURE": 100}
    assert len(results.get(timeout=10, propagate=False)) == 100


def test_a_worker_killed_during_map_loses_nothing(tasks):
    worker = tasks.workspace.start_worker(concurrency=2)
    log = tasks.workspace.file("calls.log")
    results = tasks.logged_cube.starmap([(log, x) for x in range(2000)], chunksize=50)
    tasks.workspace.wait_until(lambda: len(faults.executions(log)) > 200, 20, "progress")
    os.kill(worker.children()[0], signal.SIGKILL)
    assert results.get(timeout=40) == [x**3 for x in range(2000)]
    assert {int(e.tag) for e in faults.executions(log)} == set(range(2000))
