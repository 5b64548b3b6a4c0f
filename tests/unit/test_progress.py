"""update_progress inside a task, Result.progress outside it."""

from __future__ import annotations

import pytest

from taskmill import App, Progress, update_progress
from taskmill.progress import reporting


@pytest.fixture
def app(tmp_path):
    found = App("progress", broker=f"sqlite:///{tmp_path / 'broker.db'}")
    yield found
    found.close()


def test_outside_a_worker_update_progress_does_nothing():
    update_progress(1, 2)


def test_progress_reported_inside_a_task_is_read_from_its_result(app):
    result = app.AsyncResult("task-1")
    assert result.progress is None
    with reporting(app.broker, "task-1", 60, app.serializer):
        update_progress(3, 10)
        update_progress(4, 10)  # within 0.2 s of the last: not written
    assert result.progress.done == 3
    with reporting(app.broker, "task-1", 60, app.serializer):
        update_progress(10, 10)  # the last step is always written
    progress = result.progress
    assert (progress.done, progress.total, progress.fraction) == (10, 10, 1.0)
    assert result.status == "UNKNOWN"  # progress is not the task's result


def test_progress_does_not_block_the_final_result(app):
    @app.task
    def step():
        update_progress(1, 2)
        return "done"

    result = step.delay()
    (delivery,) = app.broker.reserve(["default"], 1, 30, 0)
    from taskmill.worker.execution import execute

    outcome = execute(app, delivery)
    app.broker.ack([delivery], [outcome.result])
    assert result.get(timeout=5) == "done"
    assert result.progress == Progress(1, 2, result.progress.at)


@pytest.mark.parametrize("bad", [("1", 2), (1, "2"), (True, 2)])
def test_progress_must_be_numbers(bad):
    with pytest.raises(TypeError):
        update_progress(*bad)
