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


def _serve_all(app: App, count: int) -> None:
    """Do a worker's part by hand: reserve every message, ack with its argument doubled."""
    done = 0
    while done < count:
        batch = app.broker.reserve(["default"], 64, lease_s=30, wait_s=0)
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
