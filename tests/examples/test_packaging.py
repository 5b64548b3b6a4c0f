"""The examples ship inside taskmill (``taskmill.examples``), so ``taskmill demo`` can run
them from any install. pyproject.toml lists the packages (a folder outside ``src/`` cannot
be found automatically): the list must name every package of both trees."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages(top: Path, name: str) -> set[str]:
    return {
        ".".join([name, *init.parent.relative_to(top).parts])
        for init in top.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_pyproject_lists_every_package_of_src_and_examples():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]

    found = _packages(ROOT / "src" / "taskmill", "taskmill")
    found |= _packages(ROOT / "examples", "taskmill.examples")

    assert set(config["packages"]) == found
    assert config["package-dir"] == {"": "src", "taskmill.examples": "examples"}


def test_the_examples_import_from_the_installed_package():
    import taskmill.examples.squares.tasks as tasks

    assert Path(tasks.__file__).resolve() == ROOT / "examples" / "squares" / "tasks.py"
    assert tasks.compute_square.name == "taskmill.examples.squares.tasks.square"
