"""The command line every example's ``run.py`` shares: options, a work folder, the report.

``python -m taskmill.examples.NAME.run [-c N] [--dir DIR] [--no-progress] [OPTIONS]``
runs the example's ``run(folder, concurrency, progress, **options)`` and prints its
:class:`~taskmill.examples.report.Report`. Exit code 1 if a check failed, 130 after
Ctrl-C (the worker is stopped either way: see :mod:`.workers`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .report import Report

__all__ = ["main", "parser"]


def parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every example takes."""
    found = argparse.ArgumentParser(
        prog=f"python -m taskmill.examples.{name}.run",
        description=" ".join((description or "").strip().split("\n\n")[0].split()),
    )
    found.add_argument(
        "-c", "--concurrency", type=int, default=2, help="worker processes (default: %(default)s)"
    )
    found.add_argument(
        "--dir",
        type=Path,
        default=Path(f"taskmill-example-{name}"),
        help="folder for the example's files (default: ./taskmill-example-%(prog)s)".replace(
            "%(prog)s", name
        ),
    )
    found.add_argument("--no-progress", action="store_true", help="draw no progress bars")
    return found


def main(
    run: Callable[..., Report],
    arguments: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run the example in its folder, print the report."""
    options: dict[str, Any] = vars(arguments.parse_args(argv))
    folder: Path = options.pop("dir")
    folder.mkdir(parents=True, exist_ok=True)
    concurrency = options.pop("concurrency")
    progress = not options.pop("no_progress")
    try:
        report = run(folder, concurrency=concurrency, progress=progress, **options)
    except AssertionError as exc:
        print(f"check failed: {exc}")
        return 1
    except KeyboardInterrupt:
        print("interrupted: the worker is stopped")
        return 130
    print(report.text())
    return 0
