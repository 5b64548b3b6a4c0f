"""Result.get looks at many outstanding results at once: a send-all-then-get-each loop
costs a round trip per window of results, not one per result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmill import App
from taskmill.result import Outstanding, value_record


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = App("window", broker=f"sqlite:///{tmp_path / 'broker.db'}")
    yield app
    app.close()


def _serve_all(app: App, count: int, batch_size: int = 64) -> None:
    """Do a worker's part by hand: reserve ``count`` messages, ack each with its argument
    doubled."""
    done = 0
    while done < count:
        batch = app.broker.reserve(["default"], min(batch_size, count - done), 30, wait_s=0)
        records = []
        for delivery in batch:
            x = app.serializer.loads(delivery.body)["args"][0]
            records.append(value_record(delivery.id, x * 2, 60))
        app.broker.ack(batch, records)
        done += len(batch)


def _count_calls(app: App, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the client's result lookups (not the broker's own calls inside them); the
    real methods still run."""
    calls: Counter[str] = Counter()
    depth = [0]
    broker = app.broker
    for name in ("fetch_results", "wait_results"):
        real = getattr(broker, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if not depth[0]:
                calls[_name] += 1
            depth[0] += 1
            try:
                return _real(*args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(broker, name, spy)
    return calls


def test_getting_many_finished_results_takes_a_look_per_window(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    double = app.task(name="double")(lambda x: x * 2)
    results = [double.delay(i) for i in range(1000)]
    _serve_all(app, 1000)
    calls = _count_calls(app, monkeypatch)

    assert [r.get(timeout=5) for r in results] == [i * 2 for i in range(1000)]
    looks = -(-1000 // (Outstanding.WINDOW + 1))
    assert calls == Counter({"fetch_results": looks})


def test_a_single_outstanding_result_waits_without_an_extra_look(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    double = app.task(name="double")(lambda x: x * 2)
    result = double.delay(21)
    _serve_all(app, 1)
    calls = _count_calls(app, monkeypatch)

    assert result.get(timeout=5) == 42
    assert calls == Counter({"wait_results": 1})


def test_results_still_running_are_waited_for_after_the_look(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    double = app.task(name="double")(lambda x: x * 2)
    first, second = double.delay(1), double.delay(2)
    (delivery,) = app.broker.reserve(["default"], 1, lease_s=30, wait_s=0)
    app.broker.ack([delivery], [value_record(delivery.id, 2, 60)])
    calls = _count_calls(app, monkeypatch)

    assert first.get(timeout=5) == 2  # found by the look, with the second's id asked too
    assert calls == Counter({"fetch_results": 1})
    _serve_all(app, 1)
    assert second.get(timeout=5) == 4  # the only one left: straight to the wait
    assert calls == Counter({"fetch_results": 1, "wait_results": 1})


def test_a_dropped_result_handle_is_not_kept() -> None:
    outstanding = Outstanding()
    app = App("weak", broker="sqlite:///:memory:")
    handle = app.AsyncResult("x")
    outstanding.add(handle)
    assert [r.id for r in outstanding.others("y")] == ["x"]
    del handle
    assert outstanding.others("y") == []


def test_results_finishing_one_by_one_are_not_asked_about_again_and_again(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow tasks, waited for in order as each finishes: a look that finds no other
    result final shrinks the next look's window, so the ids asked about stay a few per
    ``get()`` rather than every outstanding id each time."""
    double = app.task(name="double")(lambda x: x * 2)
    results = [double.delay(i) for i in range(200)]
    asked: list[int] = []
    real = app.broker.fetch_results

    def spy(ids: Any, final_only: bool = False) -> Any:
        asked.append(len(ids))
        return real(ids, final_only)

    monkeypatch.setattr(app.broker, "fetch_results", spy)
    for i, result in enumerate(results):
        _serve_all(app, 1, batch_size=1)
        assert result.get(timeout=5) == i * 2

    assert asked[0] == len(results)  # the first look asks about every outstanding one
    assert sum(asked) < 4 * len(results)  # then a few ids per get: not 200 + 199 + ...


def test_the_window_grows_back_when_looks_find_finished_results(app: App) -> None:
    outstanding = app.outstanding
    outstanding.looked(0)
    assert outstanding.others("nobody") == []
    outstanding.waited()
    handles = [app.AsyncResult(f"id{i}") for i in range(600)]
    for i in range(300):
        outstanding.add(handles[i])
    sizes = []
    for _ in range(6):
        others = outstanding.others("nobody")
        sizes.append(len(others))
        outstanding.looked(len(others))  # every one asked about was found final
    assert sizes == [1, 3, 7, 15, 31, 63]
