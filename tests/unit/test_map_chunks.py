"""Task.map / starmap without workers: chunking, sizes, bad arguments, and the ResultSet
read back from results a test stores itself (running chunks with ``execute``)."""

from __future__ import annotations

import pytest

from taskmill import App, MessageTooLarge, ResultTimeout, TaskRevoked
from taskmill.bulk import auto_chunksize
from taskmill.worker.execution import execute


@pytest.fixture
def app(tmp_path):
    found = App("maps", broker=f"sqlite:///{tmp_path / 'broker.db'}", max_message_bytes=4096)
    yield found
    found.close()


@pytest.fixture
def square(app):
    @app.task
    def square(x):
        if x < 0:
            raise ValueError(f"negative {x}")
        return x * x

    return square


def run_all(app):
    """Run every queued message here, as a worker child would."""
    while batch := app.broker.reserve(["default"], 100, 30, 0):
        for delivery in batch:
            outcome = execute(app, delivery)
            app.broker.ack([delivery], [outcome.result])


@pytest.mark.parametrize(
    ("count", "chunksize"),
    [(0, 1), (1, 1), (64, 1), (65, 2), (1000, 16), (64_000, 1000), (10**7, 1000)],
)
def test_auto_chunksize(count, chunksize):
    assert auto_chunksize(count) == chunksize


def test_map_sends_one_message_per_chunk_and_gets_values_in_order(app, square):
    results = square.map(range(100), chunksize=30)
    assert len(results) == 100
    assert len(results.ids) == 4
    assert results.counts() == {"PENDING": 100}
    run_all(app)
    assert results.get(timeout=5) == [x * x for x in range(100)]
    assert results.counts() == {"SUCCESS": 100}
    assert results.ready() and results.successful() and not results.failed()


def test_starmap_and_failed_items(app):
    @app.task
    def divide(a, b):
        return a / b

    results = divide.starmap([(1, 1), (1, 0), (4, 2)], chunksize=2)
    run_all(app)
    with pytest.raises(ZeroDivisionError):
        results.get(timeout=5)
    values = results.get(timeout=5, propagate=False)
    assert values[0] == 1.0 and values[2] == 2.0
    assert isinstance(values[1], ZeroDivisionError)
    assert results.counts() == {"SUCCESS": 2, "FAILURE": 1}
    assert sorted(map(str, results.as_completed(propagate=False))) == sorted(map(str, values))


def test_a_chunk_over_the_size_limit_is_split(app, square):
    results = square.map(["x" * 500 for _ in range(20)], chunksize=20)
    assert len(results) == 20
    assert len(results.ids) > 1


def test_one_call_over_the_size_limit_is_refused(app, square):
    with pytest.raises(MessageTooLarge):
        square.map(["x" * 5000])


def test_an_argument_json_cannot_carry_is_named(app, square):
    with pytest.raises(TypeError, match=r"argument 'x'.*set"):
        square.map([1, {2}])
    assert app.broker.stats() == {}  # nothing was sent


def test_get_times_out_without_workers(app, square):
    results = square.map(range(3))
    with pytest.raises(ResultTimeout):
        results.get(timeout=0.2)
    with pytest.raises(TimeoutError):
        list(results.as_completed(timeout=0.2))


def test_revoke_stops_the_chunks_not_started(app, square):
    results = square.map(range(10), chunksize=5)
    assert results.revoke() == 10
    run_all(app)
    assert results.counts() == {"FAILURE": 10}
    with pytest.raises(TaskRevoked):
        results.get(timeout=5)


def test_as_completed_yields_each_item_once(app, square):
    results = square.map(range(50), chunksize=7)
    run_all(app)
    assert sorted(results.as_completed(timeout=5)) == [x * x for x in range(50)]


def test_progress_bar_draws_on_stderr(app, square, capsys):
    results = square.map(range(10), chunksize=5)
    run_all(app)
    assert results.get(timeout=5, progress=True) == [x * x for x in range(10)]
    err = capsys.readouterr().err
    assert "10/10" in err
