"""The examples' workloads, run for real at small sizes: workers, results, files.

Each test runs an example's ``run`` (which starts and stops its own worker) and then
checks what it produced against a computation of its own, not only the example's own
checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score


@pytest.mark.timeout(120)
def test_squares_come_back_complete_and_in_order_in_all_three_styles(example, tmp_path):
    report = example("squares").run(tmp_path, concurrency=2, progress=False, count=3000)

    expected = [n * n for n in range(3000)]
    assert report.details["map"] == expected
    assert report.details["executor"] == expected
    assert report.details["delay"] == expected[:100]
    assert any("first one" in line for line in report.lines)


@pytest.mark.timeout(120)
def test_data_map_reduce_equals_numpy_on_the_whole_array(example, tmp_path):
    report = example("data").run(
        tmp_path, concurrency=2, progress=False, values=3_000_000, chunks=5
    )

    values = np.load(tmp_path / "values.npy")
    found = report.details["workers"]
    assert values.shape == (3_000_000,)
    assert found["count"] == 3_000_000
    assert found["minimum"] == values.min()
    assert found["maximum"] == values.max()
    assert found["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert found["std"] == pytest.approx(values.std(), rel=1e-9)
    histogram, _ = np.histogram(values, bins=len(found["histogram"]), range=(-6.0, 6.0))
    assert found["histogram"] == histogram.tolist()
    assert sum(found["histogram"]) + found["outside"] == 3_000_000
    assert report.speedup is not None and report.speedup > 0


@pytest.mark.timeout(120)
def test_images_are_blurred_and_written_next_to_their_sources(example, tmp_path):
    report = example("images").run(tmp_path, concurrency=2, progress=False, images=5, radius=3)

    sources, outputs = report.details["sources"], report.details["outputs"]
    assert len(sources) == len(outputs) == 5
    assert sorted(tmp_path.glob("*.png")) == sorted([*sources, *outputs])
    for source, output in zip(sources, outputs, strict=True):
        assert output.parent == source.parent
        assert output.name == source.stem + ".blurred.png"
        with Image.open(source) as original, Image.open(output) as blurred:
            assert blurred.size == original.size
            expected = original.filter(ImageFilter.GaussianBlur(3))
            assert blurred.tobytes() == expected.tobytes()
            assert blurred.tobytes() != original.tobytes()


@pytest.mark.timeout(180)
def test_ml_grid_scores_are_the_cross_validated_accuracy_of_each_point(example, tmp_path):
    report = example("ml").run(
        tmp_path,
        concurrency=2,
        progress=False,
        trees=(5, 10),
        depths=(4, None),
        features=("sqrt",),
        folds=3,
    )

    scores = report.details["scores"]
    assert [(s["n_estimators"], s["max_depth"]) for s in scores] == [
        (5, 4),
        (5, None),
        (10, 4),
        (10, None),
    ]
    features, labels = load_digits(return_X_y=True)
    model = RandomForestClassifier(n_estimators=10, max_depth=None, random_state=0, n_jobs=1)
    accuracy = cross_val_score(model, features, labels, cv=3)
    assert scores[3]["mean"] == pytest.approx(accuracy.mean())
    assert report.details["best"] == max(scores, key=lambda s: s["mean"])
    assert any(line.startswith("best:") for line in report.lines)
