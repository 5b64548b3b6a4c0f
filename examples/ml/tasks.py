"""Cross-validating a random forest on scikit-learn's handwritten digits: one task per
point of a parameter grid.

Tasks take and return plain values (numbers, strings), so a grid point and its score
travel as small JSON messages; each worker loads the (bundled, small) dataset itself.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score

from taskmill import App

app = App("ml")


@functools.cache
def digits() -> tuple[Any, Any]:
    """The 1,797 8x8 images of digits and their labels, loaded once per process."""
    return load_digits(return_X_y=True)


@app.task
def cross_validate(
    n_estimators: int, max_depth: int | None, max_features: str | float, folds: int = 5
) -> dict[str, Any]:
    """Mean and spread of a random forest's accuracy over ``folds`` folds."""
    features, labels = digits()
    model = RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        max_features=max_features,
        random_state=0,
        n_jobs=1,  # one core per task: the parallelism is the workers'
    )
    scores = cross_val_score(model, features, labels, cv=folds)
    return {
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "max_features": max_features,
        "mean": float(scores.mean()),
        "std": float(scores.std()),
    }


def grid(
    n_estimators: Sequence[int],
    max_depth: Sequence[int | None],
    max_features: Sequence[str | float],
) -> list[tuple[int, int | None, str | float]]:
    """Every combination of the parameters, as argument tuples for ``cross_validate``."""
    return list(itertools.product(n_estimators, max_depth, max_features))
