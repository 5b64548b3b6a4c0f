"""Grid search: cross-validate random forests on the digits dataset, one task per grid point.

    python -m taskmill.examples.ml.run [--trees 25,50,100] [--depths 8,none]
                                       [--features sqrt,log2] [--folds 5] [-c 2]

Runs the grid in this one process first (for the speed-up and the expected scores), then
on the workers with ``cross_validate.starmap(grid)``; prints the table of cross-validated
accuracy and the best parameters. The forests are seeded, so both runs must give the
very same scores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from taskmill.examples import script
from taskmill.examples.ml.tasks import cross_validate, grid
from taskmill.examples.report import Report
from taskmill.examples.workers import running_worker


def table(scores: list[dict[str, Any]]) -> list[str]:
    """The scores as text rows, best first."""
    rows = [f"{'trees':>5} {'depth':>5} {'features':>8}   accuracy"]
    for s in sorted(scores, key=lambda s: -s["mean"]):
        depth = "none" if s["max_depth"] is None else s["max_depth"]
        rows.append(
            f"{s['n_estimators']:>5} {depth!s:>5} {s['max_features']!s:>8}   "
            f"{s['mean']:.4f} ± {s['std']:.4f}"
        )
    return rows


def run(
    folder: Path,
    concurrency: int = 2,
    progress: bool = True,
    trees: tuple[int, ...] = (25, 50, 100),
    depths: tuple[int | None, ...] = (8, None),
    features: tuple[str | float, ...] = ("sqrt", "log2"),
    folds: int = 5,
) -> Report:
    points = [(*point, folds) for point in grid(trees, depths, features)]

    begun = time.perf_counter()
    expected = [cross_validate(*point) for point in points]
    one_process_seconds = time.perf_counter() - begun

    with running_worker("taskmill.examples.ml.tasks", folder / "worker.log", concurrency):
        begun = time.perf_counter()
        scores = cross_validate.starmap(points, chunksize=1).get(timeout=600, progress=progress)
        seconds = time.perf_counter() - begun
    assert scores == expected, "the workers' scores differ from one process's"
    best = max(scores, key=lambda s: s["mean"])
    return Report(
        "ml",
        seconds,
        one_process_seconds,
        [
            f"{len(points)} grid points, {folds}-fold cross-validation, digits dataset",
            *table(scores),
            f"best: {best['n_estimators']} trees, max_depth {best['max_depth']}, "
            f"max_features {best['max_features']}: accuracy {best['mean']:.4f}",
        ],
        {"scores": scores, "best": best},
    )


def _trees(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def _depths(text: str) -> tuple[int | None, ...]:
    return tuple(None if part.lower() == "none" else int(part) for part in text.split(","))


def _features(text: str) -> tuple[str | float, ...]:
    return tuple(part if part.isalpha() else float(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    arguments = script.parser("ml", __doc__)
    arguments.add_argument(
        "--trees", type=_trees, default=(25, 50, 100), help="n_estimators, comma-separated"
    )
    arguments.add_argument(
        "--depths", type=_depths, default=(8, None), help="max_depth, comma-separated"
    )
    arguments.add_argument(
        "--features", type=_features, default=("sqrt", "log2"), help="max_features, comma-separated"
    )
    arguments.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    return script.main(run, arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
