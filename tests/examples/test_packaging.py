"""The examples ship inside taskmill (``taskmill.examples``), so ``taskmill demo`` runs
their own code from any install. ``src/taskmill/examples`` is a symbolic link to
``examples/``: setuptools finds the example packages through it (a wheel holds copies of
the files), and an editable install stays a plain path that mypy can follow (which
tests/unit/test_task.py relies on)."""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def test_src_taskmill_examples_links_to_the_examples_folder():
    link = ROOT / "src" / "taskmill" / "examples"

    assert link.is_symlink()
    assert os.readlink(link) == "../../examples"
    assert link.resolve() == ROOT / "examples"


def test_the_package_finder_sees_every_example_package():
    expected = {
        "taskmill.examples."
        + init.parent.relative_to(ROOT / "examples").as_posix().replace("/", ".")
        for init in (ROOT / "examples").glob("*/__init__.py")
    }

    found = set(find_packages(ROOT / "src"))

    assert {"taskmill.examples", "taskmill.examples.squares", "taskmill.examples.crawler"} <= found
    assert expected <= found


def test_the_examples_import_from_the_installed_package():
    import taskmill.examples.squares.tasks as tasks

    assert Path(tasks.__file__).resolve() == ROOT / "examples" / "squares" / "tasks.py"
    assert tasks.compute_square.name == "taskmill.examples.squares.tasks.square"
