"""``taskmill demo``: the examples' real workloads, one after another, on local workers.

::

    taskmill demo ── a temporary directory: broker.db (SQLite) and each example's files
      │   TASKMILL_BROKER=sqlite:///TMP/broker.db, for this process and the workers
      ├─ squares ─▶ taskmill.examples.squares.run.run(TMP/squares, …)
      │               starts `taskmill worker -A taskmill.examples.squares.tasks -c N`,
      │               sends the work, checks the results, stops the worker by pid
      ├─ data, images, ml: the same, each with its own worker
      ├─ crawler: the same, and a local website (threads of this process) to crawl
      └─ a summary table; then the directory and the broker's doorbell sockets are removed

The workloads are the examples' own code (``examples/`` is installed as
``taskmill.examples``), run at smaller sizes. Ctrl-C stops the running example's
worker (its ``with`` block stops it by pid), then everything is removed as usual; exit
code 130. A package the examples need that is missing is named, with how to install
it: exit code 2, before anything starts.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .app import BROKER_ENV
from .brokers.doorbell import Doorbells

__all__ = ["WORKLOADS", "Workload", "demo", "missing_packages"]

#: module imported ─▶ the package that provides it, as pip names it
NEEDED = {"numpy": "numpy", "PIL": "Pillow", "sklearn": "scikit-learn", "httpx": "httpx"}


@dataclass(frozen=True)
class Workload:
    """One example as the demo runs it: its name, what it shows, its demo sizes."""

    name: str
    about: str
    options: dict[str, Any] = field(default_factory=dict)
    #: worker processes it uses: None for the demo's -c
    children: int | None = None


WORKLOADS = (
    Workload(
        "squares",
        "the hello world: map to a worker pool, a concurrent.futures Executor, delay/get",
        {"count": 10_000},
    ),
    Workload(
        "data",
        "map-reduce statistics of 10 million values, checked against one process",
        {"values": 10_000_000, "chunks": 16},
    ),
    Workload(
        "images",
        "Gaussian blur of 16 generated images with Pillow, checked against one process",
        {"images": 16},
    ),
    Workload(
        "ml",
        "random forests on the digits dataset, a grid of 8 points cross-validated",
        {"trees": (20, 40), "depths": (8, None), "features": ("sqrt", "log2"), "folds": 3},
    ),
    Workload(
        "crawler",
        "async def tasks fetch 39 pages of a local site: retries, at most 4 per host at once",
        {"pages": 8},
        children=1,  # one event loop, many requests in flight; the per-host limit is per child
    ),
)


class MissingPackages(click.ClickException):
    """The examples need packages that are not installed: one message, exit code 2."""

    exit_code = 2


def missing_packages(needed: dict[str, str] = NEEDED) -> list[str]:
    """The pip names of the packages in ``needed`` whose module cannot be imported."""
    return [
        package for module, package in needed.items() if importlib.util.find_spec(module) is None
    ]


def _check_packages() -> None:
    missing = missing_packages()
    if missing:
        raise MissingPackages(
            f"the demo needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed. Install the examples' packages with:\n"
            f"    {sys.executable} -m pip install 'taskmill[examples]'\n"
            "(in a source checkout: pip install -e '.[examples]')"
        )


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    """A temporary directory with the broker in it, set as TASKMILL_BROKER while inside;
    removed afterwards with the broker's doorbell sockets, however the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="taskmill-demo-")).resolve()
    database = directory / "broker.db"
    previous = os.environ.get(BROKER_ENV)
    os.environ[BROKER_ENV] = f"sqlite:///{database}"
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(BROKER_ENV, None)
        else:
            os.environ[BROKER_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(Doorbells(str(database)).directory, ignore_errors=True)


def _run_one(workload: Workload, directory: Path, concurrency: int) -> Any:
    """Run one example's ``run``; returns its Report."""
    module = importlib.import_module(f"taskmill.examples.{workload.name}.run")
    folder = directory / workload.name
    folder.mkdir()
    try:
        return module.run(
            folder,
            concurrency=workload.children or concurrency,
            progress=True,
            **workload.options,
        )
    finally:
        # the example's App holds a connection to the broker in this process
        tasks = sys.modules.get(f"taskmill.examples.{workload.name}.tasks")
        if tasks is not None:
            tasks.app.close()


def _summary(reports: Sequence[Any], concurrency: int) -> Any:
    from rich.table import Table

    table = Table(title=f"taskmill demo: {concurrency} worker processes")
    for column in ("workload", "on the workers", "in one process", "speed-up"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for report in reports:
        alone = report.one_process_seconds
        table.add_row(
            report.name,
            f"{report.seconds:.2f}s",
            "—" if alone is None else f"{alone:.2f}s",
            "—" if report.speedup is None else f"{report.speedup:.2f}x",
        )
    return table


def run_demo(concurrency: int, names: Sequence[str] = ()) -> int:
    """Run the workloads (all, or those named); returns the exit code."""
    from rich.console import Console

    console = Console()
    chosen = [w for w in WORKLOADS if not names or w.name in names]
    started = time.perf_counter()
    reports = []
    try:
        with _workspace() as directory:
            console.print(
                f"[bold]taskmill demo[/]: {len(chosen)} workloads, {concurrency} worker "
                f"processes, broker sqlite:///{directory / 'broker.db'}"
            )
            for workload in chosen:
                console.rule(f"[bold]{workload.name}[/]: {workload.about}", align="left")
                report = _run_one(workload, directory, concurrency)
                console.print("\n".join(f"  {line}" for line in report.lines), highlight=False)
                reports.append(report)
    except KeyboardInterrupt:
        console.print("interrupted: workers stopped, temporary files removed")
        return 130
    except (AssertionError, RuntimeError) as exc:
        console.print(f"[red]the demo failed:[/] {exc}", highlight=False)
        return 1
    console.print(_summary(reports, concurrency))
    console.print(
        f"done in {time.perf_counter() - started:.1f}s; workers stopped, temporary files "
        "removed. The code is in examples/ (taskmill.examples): see examples/README.md."
    )
    return 0


@click.command()
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes for each workload (the crawler uses one).",
)
@click.argument("workloads", nargs=-1, type=click.Choice([w.name for w in WORKLOADS]))
def demo(concurrency: int, workloads: tuple[str, ...]) -> None:
    """Run the examples' workloads on local workers, with progress bars and timings.

    Everything happens in a temporary directory with the embedded SQLite broker, and is
    removed at the end (Ctrl-C too). Give WORKLOADS to run only those.
    """
    _check_packages()
    sys.exit(run_demo(concurrency, workloads))
