"""Running the examples for real, in this process: the ``example`` fixture.

::

    test ──▶ taskmill.examples.NAME.run.run(tmp_path, …) ──Popen──▶ taskmill worker -A …tasks
               (client, in this process)                          (stopped by the example)

Each test gets a broker of its own (``TASKMILL_BROKER`` in ``tmp_path``), and fresh
imports of the examples' modules, whose Apps read that variable when they are made. At
teardown the apps are closed and the modules dropped again. Every process the test
left behind is killed by pid, and fails the test: an example must stop what it starts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest


def _descendants() -> set[psutil.Process]:
    return set(psutil.Process().children(recursive=True))


def _drop_example_modules() -> None:
    for name in [n for n in sys.modules if n.startswith("taskmill.examples.")]:
        module = sys.modules.pop(name)
        app = getattr(module, "app", None)
        if app is not None and name.endswith(".tasks"):
            app.close()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ModuleType]]:
    """``example("data")``: the example's ``run`` module, freshly imported, on a broker
    in ``tmp_path``."""
    monkeypatch.setenv("TASKMILL_BROKER", f"sqlite:///{tmp_path / 'broker.db'}")
    before = _descendants()
    _drop_example_modules()

    def load(name: str) -> ModuleType:
        return importlib.import_module(f"taskmill.examples.{name}.run")

    try:
        yield load
    finally:
        _drop_example_modules()
        left = [p for p in _descendants() - before if _alive(p)]
        for process in left:
            process.kill()
        psutil.wait_procs(left, timeout=5)
        assert not left, f"the example left processes behind: {left}"
