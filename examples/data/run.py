"""Map-reduce over a large numeric dataset: made and summarized chunk by chunk on workers.

    python -m taskmill.examples.data.run [--values 20000000] [--chunks 32] [-c 2]

First in this one process: make the dataset (float64 values in a ``.npy`` file in the
example's folder) and compute its statistics with numpy on the whole array. Then on the
workers, in two rounds of one task per chunk: ``generate(path, start, stop)`` makes the
same values again, ``summarize(path, start, stop)`` returns partial statistics (count,
sum, sum of squares, min, max, histogram), added up here. The outcome must equal the
one-process statistics; the times give the speed-up.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

from taskmill.examples import script
from taskmill.examples.data.tasks import (
    Statistics,
    chunk_ranges,
    combine,
    create_dataset,
    finish,
    generate,
    one_process,
    summarize,
)
from taskmill.examples.report import Report
from taskmill.examples.workers import running_worker

BARS = " ▁▂▃▄▅▆▇█"


def check_equal(parallel: Statistics, alone: Statistics) -> None:
    """Counts, extremes and histograms exactly; mean and deviation up to rounding (the
    sums are added in another order)."""
    for what in ("count", "minimum", "maximum", "histogram", "outside"):
        assert getattr(parallel, what) == getattr(alone, what), f"{what} differs"
    for what in ("mean", "std"):
        mine, theirs = getattr(parallel, what), getattr(alone, what)
        assert math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12), (
            f"{what} differs: {mine!r} != {theirs!r}"
        )


def sparkline(histogram: list[int]) -> str:
    """The histogram in one line of block characters."""
    top = max(histogram) or 1
    return "".join(BARS[round(count / top * (len(BARS) - 1))] for count in histogram)


def run(
    folder: Path,
    concurrency: int = 2,
    progress: bool = True,
    values: int = 20_000_000,
    chunks: int = 32,
) -> Report:
    path = str(folder / "values.npy")
    ranges = chunk_ranges(values, chunks)

    begun = time.perf_counter()
    create_dataset(path, values)
    generate(path, 0, values)
    alone = one_process(path)
    one_process_seconds = time.perf_counter() - begun

    with running_worker("taskmill.examples.data.tasks", folder / "worker.log", concurrency):
        begun = time.perf_counter()
        create_dataset(path, values)
        written = generate.starmap([(path, *r) for r in ranges], chunksize=1)
        assert sum(written.get(timeout=600, progress=progress)) == values, "values missing"
        parts = summarize.starmap([(path, *r) for r in ranges], chunksize=1)
        parallel = finish(combine(parts.get(timeout=600, progress=progress)))
        seconds = time.perf_counter() - begun
    check_equal(parallel, alone)
    return Report(
        "data",
        seconds,
        one_process_seconds,
        [
            f"{values:,} values ({values * 8 / 1e6:,.0f} MB) made and summarized "
            f"in {len(ranges)} chunks",
            f"mean {parallel.mean:.6f}, std {parallel.std:.6f}, min {parallel.minimum:.3f}, "
            f"max {parallel.maximum:.3f}: equal to one process's",
            f"histogram  {sparkline(parallel.histogram)}",
        ],
        {"path": path, "workers": asdict(parallel), "one process": asdict(alone)},
    )


def main(argv: list[str] | None = None) -> int:
    arguments = script.parser("data", __doc__)
    arguments.add_argument("--values", type=int, default=20_000_000, help="dataset size")
    arguments.add_argument(
        "--chunks",
        type=int,
        default=32,
        help="tasks per round, at most (a chunk is whole blocks of 2**20 values)",
    )
    return script.main(run, arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
