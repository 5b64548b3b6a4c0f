"""A large dataset made and summarized chunk by chunk: ``generate`` and ``summarize`` run
on workers; ``combine`` and ``finish`` put the chunks' partial statistics together.

The dataset travels as a file path and a range, never as values: a worker maps the
``.npy`` file into memory and writes or reads only its own slice, so a message is a few
bytes whatever the size of the data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskmill import App

app = App("data")

#: values are made in blocks of this many, each from its own seed
BLOCK = 1 << 20
#: the histogram: BINS equal bins over [LOW, HIGH); values outside are counted apart
BINS = 48
LOW, HIGH = -6.0, 6.0


@dataclass(frozen=True)
class Statistics:
    """The finished result: what a one-process computation gives too."""

    count: int
    mean: float
    std: float
    minimum: float
    maximum: float
    histogram: list[int]
    outside: int


def chunk_ranges(count: int, chunks: int) -> list[tuple[int, int]]:
    """``values[0:count]`` split into about ``chunks`` ranges of whole blocks (BLOCK
    values; the last range ends at ``count``), so the data does not depend on the split."""
    blocks = -(-count // BLOCK)
    bounds = [min(count, blocks * i // chunks * BLOCK) for i in range(chunks + 1)]
    return [(start, stop) for start, stop in itertools.pairwise(bounds) if stop > start]


def create_dataset(path: str, count: int) -> None:
    """An ``.npy`` file for ``count`` float64 values, to be filled by ``generate``."""
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(count,)).flush()


def make_block(seed: int, index: int, size: int) -> np.ndarray[Any, Any]:
    """Block number ``index`` of the data: a mix of two normal distributions, the same
    for the same seed and index whichever process makes it."""
    rng = np.random.default_rng([seed, index])
    wide = rng.random(size) < 0.3
    return np.where(wide, rng.normal(1.5, 1.2, size), rng.normal(-1.0, 0.6, size))


@app.task
def generate(path: str, start: int, stop: int, seed: int = 0) -> int:
    """Fill ``values[start:stop]`` of the ``.npy`` file (``start`` a multiple of BLOCK);
    returns how many values it wrote. Tasks write disjoint ranges of the same file."""
    values = np.load(path, mmap_mode="r+")
    for begin in range(start, stop, BLOCK):
        end = min(stop, begin + BLOCK)
        values[begin:end] = make_block(seed, begin // BLOCK, end - begin)
    values.flush()
    return stop - start


def summarize_values(values: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Partial statistics of some values: sums that add up across chunks."""
    histogram, _ = np.histogram(values, bins=BINS, range=(LOW, HIGH))
    return {
        "count": int(values.size),
        "sum": float(values.sum()),
        "sum_of_squares": float(np.dot(values, values)),
        "min": float(values.min()),
        "max": float(values.max()),
        "histogram": histogram.tolist(),
    }


@app.task
def summarize(path: str, start: int, stop: int) -> dict[str, Any]:
    """Partial statistics of ``values[start:stop]`` of the ``.npy`` file at ``path``."""
    values = np.load(path, mmap_mode="r")
    return summarize_values(np.asarray(values[start:stop]))


def combine(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Partial statistics of several chunks added into those of all of them."""
    total: dict[str, Any] = {}
    for part in parts:
        if not total:
            total = {**part, "histogram": list(part["histogram"])}
            continue
        for key in ("count", "sum", "sum_of_squares"):
            total[key] += part[key]
        total["min"] = min(total["min"], part["min"])
        total["max"] = max(total["max"], part["max"])
        pairs = zip(total["histogram"], part["histogram"], strict=True)
        total["histogram"] = [mine + theirs for mine, theirs in pairs]
    return total


def finish(total: dict[str, Any]) -> Statistics:
    """Mean and standard deviation from the sums."""
    count = total["count"]
    mean = total["sum"] / count
    variance = max(0.0, total["sum_of_squares"] / count - mean * mean)
    return Statistics(
        count=count,
        mean=mean,
        std=variance**0.5,
        minimum=total["min"],
        maximum=total["max"],
        histogram=total["histogram"],
        outside=count - sum(total["histogram"]),
    )


def one_process(path: str) -> Statistics:
    """The same statistics the plain way: the whole array in this process (read from
    the file the same way the workers read it)."""
    values = np.load(path, mmap_mode="r")
    histogram, _ = np.histogram(values, bins=BINS, range=(LOW, HIGH))
    return Statistics(
        count=int(values.size),
        mean=float(values.mean()),
        std=float(values.std()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        histogram=histogram.tolist(),
        outside=int(values.size - histogram.sum()),
    )
