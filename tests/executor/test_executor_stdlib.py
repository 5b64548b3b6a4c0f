"""What the ``concurrent.futures`` documentation promises of an Executor, kept by
``taskmill.Executor`` — once with local workers it owns, once bound to a Redis app whose
workers run elsewhere."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait

import executor_calls as calls
import pytest

from taskmill import BrokenExecutor, Executor, RemoteTraceback


def test_submit_returns_a_concurrent_futures_future_with_the_value(make_executor):
    ex = make_executor()
    future = ex.submit(calls.add, 2, y=3)
    assert isinstance(future, Future)
    assert future.result(timeout=30) == 5
    assert future.done() and not future.cancelled() and future.exception() is None


def test_wait_and_as_completed_from_the_standard_library_work(make_executor):
    ex = make_executor()
    slow = ex.submit(calls.nap, 1.5, "slow")
    fast = [ex.submit(calls.square, x) for x in range(20)]
    done, not_done = wait([slow, *fast], timeout=30, return_when=FIRST_COMPLETED)
    assert done and slow in not_done
    assert sorted(f.result() for f in as_completed(fast, timeout=30)) == sorted(
        x * x for x in range(20)
    )
    assert next(as_completed([slow], timeout=30)).result() == "slow"


def test_an_exception_is_re_raised_from_result_with_the_remote_traceback(make_executor):
    ex = make_executor()
    future = ex.submit(calls.boom, 7)
    with pytest.raises(ValueError, match="boom 7") as caught:
        future.result(timeout=30)
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "boom" in caught.value.__cause__.tb
    assert isinstance(future.exception(), ValueError)


def test_map_yields_in_order_like_the_builtin_map(make_executor):
    ex = make_executor()
    assert list(ex.map(calls.square, range(50))) == [x * x for x in range(50)]
    assert list(ex.map(pow, [2, 3, 4], [5, 5])) == [32, 243]  # the shortest iterable ends it
    assert list(ex.map(calls.square, [])) == []


@pytest.mark.parametrize("chunksize", [2, 7, 1000])
def test_map_with_a_chunksize_gives_the_same_results(make_executor, chunksize):
    ex = make_executor()
    assert list(ex.map(calls.add, range(100), range(100), chunksize=chunksize)) == [
        2 * x for x in range(100)
    ]


def test_map_rejects_a_chunksize_below_one(make_executor):
    ex = make_executor()
    with pytest.raises(ValueError):
        ex.map(calls.square, range(3), chunksize=0)


def test_map_raises_a_call_s_exception_when_its_result_is_reached(make_executor):
    ex = make_executor()
    results = ex.map(calls.fail_or_square, [1, 2, -3, 4], chunksize=2)
    assert next(results) == 1
    assert next(results) == 4
    with pytest.raises(ValueError, match="-3"):
        next(results)


def test_map_raises_timeout_error_when_a_result_is_late(make_executor):
    ex = make_executor()
    started = time.monotonic()
    results = ex.map(calls.nap, [0.0, 5.0], timeout=1.0)
    assert next(results) is None
    with pytest.raises(TimeoutError):
        next(results)
    assert time.monotonic() - started < 4.0


def test_map_consumes_a_long_input_lazily(make_executor):
    ex = make_executor(max_inflight=64)
    pulled = itertools.count()
    numbers = (next(pulled) for _ in itertools.count())  # endless
    results = ex.map(calls.square, numbers)
    assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
    results.close()  # abandoning the iterator stops reading the input
    time.sleep(0.5)
    read = next(pulled)
    time.sleep(0.5)
    assert next(pulled) == read + 1  # nothing read it meanwhile
    assert read < 64 * 4


def test_submit_and_map_after_shutdown_raise_runtime_error(make_executor):
    ex = make_executor()
    assert ex.submit(calls.square, 2).result(timeout=30) == 4
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(calls.square, 2)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.map(calls.square, [1])
    ex.shutdown()  # twice is fine


def test_shutdown_waits_for_pending_calls(make_executor):
    ex = make_executor()
    futures = [ex.submit(calls.nap, 0.2, x) for x in range(6)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(6))


def test_shutdown_without_waiting_returns_at_once_and_the_calls_still_finish(make_executor):
    ex = make_executor()
    futures = [ex.submit(calls.nap, 0.3, x) for x in range(4)]
    started = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - started < 0.2
    assert [f.result(timeout=30) for f in futures] == list(range(4))


def test_the_context_manager_shuts_down_waiting(make_executor):
    with make_executor() as ex:
        futures = [ex.submit(calls.nap, 0.1, x) for x in range(4)]
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError):
        ex.submit(calls.noop)


def test_shutdown_cancel_futures_cancels_calls_not_sent_yet(make_executor):
    ex = make_executor(max_inflight=1)
    first = ex.submit(calls.nap, 1.0, "first")
    rest = [ex.submit(calls.square, x) for x in range(10)]
    time.sleep(0.3)
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == "first"
    cancelled = [f for f in rest if f.cancelled()]
    assert len(cancelled) >= 8
    assert all(f.done() for f in rest)


def test_a_pending_future_can_be_cancelled_and_a_running_one_cannot(make_executor):
    ex = make_executor(max_inflight=1)
    running = ex.submit(calls.nap, 1.0, "ran")
    queued = ex.submit(calls.square, 3)
    assert queued.cancel()
    assert queued.cancelled()
    time.sleep(0.2)
    assert not running.cancel()
    assert running.result(timeout=30) == "ran"


@pytest.mark.parametrize("workers", [0, -1])
def test_max_workers_must_be_positive(workers):
    with pytest.raises(ValueError):
        Executor(max_workers=workers)


def test_initializer_must_be_callable():
    with pytest.raises(TypeError):
        Executor(initializer="not callable")  # type: ignore[arg-type]


def test_the_initializer_runs_once_per_worker_process(make_executor, tmp_path):
    log = str(tmp_path / "init.log")
    ex = make_executor(initializer=calls.initialize, initargs=(log,))
    seen = list(ex.map(calls.init_count, range(200)))
    assert {count for _, count in seen} == {1}
    pids = [line.split()[1] for line in (tmp_path / "init.log").read_text().splitlines()]
    assert len(pids) == len(set(pids))
    assert set(pids) == {str(pid) for pid, _ in seen}


def test_a_failing_initializer_breaks_the_calls(make_executor):
    ex = make_executor(initializer=calls.failing_init)
    future = ex.submit(calls.square, 2)
    with pytest.raises(concurrent.futures.BrokenExecutor) as caught:
        future.result(timeout=30)
    assert isinstance(caught.value, BrokenExecutor)
    assert "initializer" in str(caught.value)


def test_done_callbacks_run(make_executor):
    ex = make_executor()
    seen = []
    finished = threading.Event()
    future = ex.submit(calls.square, 9)
    future.add_done_callback(lambda f: (seen.append(f.result()), finished.set()))
    assert finished.wait(30)
    assert seen == [81]


def test_an_argument_that_cannot_be_pickled_fails_its_future_only(make_executor):
    ex = make_executor()
    bad = ex.submit(calls.square, lambda: 1)
    good = ex.submit(calls.square, 5)
    with pytest.raises(TypeError, match="pickle"):
        bad.result(timeout=30)
    assert good.result(timeout=30) == 25


def test_many_calls_from_many_threads_all_complete(make_executor):
    ex = make_executor()

    def submit_some(base):
        return [ex.submit(calls.square, base + x) for x in range(200)]

    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        batches = list(threads.map(submit_some, [0, 1000, 2000, 3000]))
    for base, futures in zip([0, 1000, 2000, 3000], batches, strict=True):
        assert [f.result(timeout=30) for f in futures] == [(base + x) ** 2 for x in range(200)]


def test_shutdown_from_a_done_callback_does_not_deadlock(make_executor):
    ex = make_executor()
    finished = threading.Event()
    future = ex.submit(calls.square, 2)
    future.add_done_callback(lambda _: (ex.shutdown(wait=True), finished.set()))
    assert finished.wait(30)
    with pytest.raises(RuntimeError):
        ex.submit(calls.square, 3)


@pytest.mark.parametrize("executor_kind", ["local"])
def test_large_arguments_and_results_travel(make_executor):
    ex = make_executor()
    blob = b"x" * (3 << 20)
    assert ex.submit(len, blob).result(timeout=30) == len(blob)
    assert len(ex.submit(bytes, 3 << 20).result(timeout=30)) == 3 << 20
