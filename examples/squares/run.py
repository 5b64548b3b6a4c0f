"""Squares three ways: ``map`` to a worker pool, a ``taskmill.Executor``, ``delay``/``get``.

    python -m taskmill.examples.squares.run [--count 10000] [-c 2]

1. ``compute_square.map(numbers)``: like ``multiprocessing.Pool.map``, but the pool is a
   ``taskmill worker`` that could run on other machines.
2. ``Executor().map(square, numbers)``: a ``concurrent.futures`` executor, as with
   ``ProcessPoolExecutor``; it starts and stops its own workers.
3. ``compute_square.delay(n)``, ``.status``, ``.get(timeout=)``: one task at a time,
   Celery-style.

Each way returns every result, in the order of the input, however the workers
interleave.
"""

from __future__ import annotations

import time
from pathlib import Path

from taskmill import Executor
from taskmill.examples import script
from taskmill.examples.report import Report
from taskmill.examples.squares.tasks import compute_square, square
from taskmill.examples.workers import running_worker


def with_map(numbers: range, progress: bool) -> list[int]:
    """Style 1: a worker pool fed by ``map``; values come back in input order."""
    squares = compute_square.map(numbers)
    return squares.get(timeout=120, progress=progress)


def with_executor(numbers: range, concurrency: int) -> list[int]:
    """Style 2: ``concurrent.futures``; the executor owns its worker processes."""
    with Executor(max_workers=concurrency) as executor:
        return list(executor.map(square, numbers, chunksize=100))


def with_delay(numbers: range) -> tuple[list[int], str, str]:
    """Style 3: one task per call; returns the values, and the first task's status just
    after it was sent and at the end."""
    first = compute_square.delay(numbers[0])
    status_when_sent = first.status  # PENDING until a worker takes it, then STARTED, SUCCESS
    results = [first] + [compute_square.delay(n) for n in numbers[1:]]
    values = [result.get(timeout=60) for result in results]
    return values, status_when_sent, first.status


def run(folder: Path, concurrency: int = 2, progress: bool = True, count: int = 10_000) -> Report:
    """All three styles; checks every result is there, correct and in order."""
    expected = [n * n for n in range(count)]
    lines: list[str] = []
    found: dict[str, list[int]] = {}
    started = time.perf_counter()
    with running_worker("taskmill.examples.squares.tasks", folder / "worker.log", concurrency):
        begun = time.perf_counter()
        found["map"] = with_map(range(count), progress)
        assert found["map"] == expected, "map: wrong or missing results"
        lines.append(f"map: {count:,} squares in order, {time.perf_counter() - begun:.2f}s")

        few = range(min(count, 100))
        begun = time.perf_counter()
        found["delay"], before, after = with_delay(few)
        assert found["delay"] == expected[: len(few)], "delay/get: wrong or missing results"
        lines.append(
            f"delay/get: {len(few)} tasks in order, {time.perf_counter() - begun:.2f}s "
            f"(the first one: {before} when sent, {after} at the end)"
        )
    begun = time.perf_counter()
    found["executor"] = with_executor(range(count), concurrency)
    assert found["executor"] == expected, "Executor: wrong or missing results"
    lines.append(
        f"Executor.map: {count:,} squares in order, {time.perf_counter() - begun:.2f}s "
        "(starting and stopping its own workers included)"
    )
    return Report("squares", time.perf_counter() - started, lines=lines, details=found)


def main(argv: list[str] | None = None) -> int:
    arguments = script.parser("squares", __doc__)
    arguments.add_argument("--count", type=int, default=10_000, help="how many squares")
    return script.main(run, arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
