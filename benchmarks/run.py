"""Benchmark taskmill side by side with Celery, Dramatiq, RQ and Huey, in one run.

    python benchmarks/run.py                      # everything; writes docs/benchmarks.md
    python benchmarks/run.py --quick              # a smoke run with small N
    python benchmarks/run.py --systems taskmill-sqlite,celery --workloads W1,W2

::

    python benchmarks/run.py ── creates/updates benchmarks/.venv, re-executes itself in it
      orchestrator ── for each system, for each workload, one after the other:
        cell process (timeout; on expiry its whole tree is killed, the cell "failed")
          └─ worker tree of that system (2 processes, or 1 for W2), stopped by PID
      table on stdout, raw figures in benchmarks/out/, the report in docs/benchmarks.md

Only one worker group runs at a time, so the systems never compete for the cores. Redis
must listen on 127.0.0.1:6379; the peers use db 14 and taskmill db 13, each flushed before
every cell; no other database is touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
STAMP = VENV / ".installed.sha256"
OUT_DIR = BENCH_DIR / "out"
DOC = ROOT / "docs" / "benchmarks.md"

DEFAULT_WORKLOADS = "W1,W1m,W2,W3,W5"


# -- the benchmark's own virtual environment ----------------------------------------------


def _in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _install_digest() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def bootstrap(argv: list[str], install: bool) -> None:
    """Create or update benchmarks/.venv, then become this script inside it."""
    if not VENV_PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    digest = _install_digest()
    if install and (not STAMP.exists() or STAMP.read_text() != digest):
        print("installing the peers into benchmarks/.venv (about a minute) ...", flush=True)
        subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS), "-e", str(ROOT)],
            check=True,
        )
        STAMP.write_text(digest)
    os.environ["BENCH_COMMAND"] = " ".join(["python", "benchmarks/run.py", *argv])
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])


# -- command line -------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark taskmill side by side with Celery, Dramatiq, RQ and Huey.",
    )
    parser.add_argument("--systems", default=None,
                        help="comma-separated systems [default: all]")
    parser.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                        help=f"comma-separated workloads [default: {DEFAULT_WORKLOADS}]")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with small N (writes benchmarks/out/, not docs/)")
    parser.add_argument("--w1-tasks", type=int, default=None, help="override N for W1/W1m")
    parser.add_argument("--output", type=Path, default=None,
                        help="the Markdown report [default: docs/benchmarks.md for a full "
                        "run of everything, else benchmarks/out/benchmarks.md]")
    parser.add_argument("--timeout-scale", type=float, default=1.0,
                        help="multiply every cell's timeout by this")
    parser.add_argument("--no-install", action="store_true",
                        help="do not pip-install into benchmarks/.venv (it must exist)")
    parser.add_argument("--quiet-wait", type=float, default=120.0, metavar="SECONDS",
                        help="before each cell, wait at most this long for other programs "
                        "to leave the CPUs alone [default: 120; 0: do not wait]")
    parser.add_argument("--quiet-budget", type=float, default=900.0, metavar="SECONDS",
                        help="at most this much waiting for quiet in the whole run "
                        "[default: 900]")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="run every cell N times, the systems taking turns, and report "
                        "each figure's median [default: 3; --quick: 1]")
    parser.add_argument("--retry-skewed", type=int, default=1, metavar="N",
                        help="run a cell again, up to N times, when other programs used the "
                        "CPUs during it; the least disturbed attempt counts [default: 1]")
    parser.add_argument("--keep", action="store_true",
                        help="keep the per-cell folders (worker logs, databases)")
    parser.add_argument("--list", action="store_true", help="list systems and workloads")
    # internal: run one (system, workload) cell in this process
    parser.add_argument("--cell", nargs=2, metavar=("SYSTEM", "WORKLOAD"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--cell-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def params_of(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from workloads import FULL, QUICK

    params = QUICK if args.quick else FULL
    if args.w1_tasks:
        params = replace(params, w1_tasks=args.w1_tasks)
    return params


# -- one cell -------------------------------------------------------------------------------


def run_cell(system_name: str, workload_key: str, cell_dir: Path, params: Any) -> dict[str, Any]:
    from systems import SYSTEMS, Unavailable
    from workloads import WORKLOADS

    workload = WORKLOADS[workload_key]
    system = SYSTEMS[system_name](cell_dir)
    try:
        system.check()
        if workload.key == "W1m":
            system.check_batch_send()
    except Unavailable as exc:
        return {"status": "n/a", "reason": str(exc)}
    notes: list[str] = []
    try:
        system.start_workers(workload.workers)
        metrics = workload.run(system, params)
    except Exception as exc:
        log = system.group.log_tail() if system.group else ""
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "worker_log": log}
    finally:
        notes = system.stop()
    return {"status": "ok", "metrics": metrics, "notes": notes}


def cell_main(args: argparse.Namespace) -> int:
    system_name, workload_key = args.cell
    sys.path.insert(0, str(BENCH_DIR))
    result = run_cell(system_name, workload_key, args.cell_dir, params_of(args))
    (args.cell_dir / "result.json").write_text(json.dumps(result))
    return 0


# -- the orchestrator -----------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not _in_bench_venv():
        bootstrap(argv, install=not args.no_install)
    sys.path.insert(0, str(BENCH_DIR))
    if args.cell:
        return cell_main(args)

    import orchestrate
    from systems import SYSTEMS
    from workloads import WORKLOADS

    if args.list:
        print("systems:  ", ", ".join(SYSTEMS))
        print("workloads:", ", ".join(f"{w.key} ({w.title})" for w in WORKLOADS.values()))
        return 0
    systems = _choose(args.systems, list(SYSTEMS), "system")
    workloads = _choose(args.workloads, list(WORKLOADS), "workload")
    everything = systems == list(SYSTEMS) and set(workloads) >= {"W1", "W2", "W3", "W5"}
    output = args.output or (DOC if everything and not args.quick and not args.w1_tasks
                             else OUT_DIR / "benchmarks.md")
    root = Path(tempfile.mkdtemp(prefix="taskmill-bench-"))
    try:
        return orchestrate.run(
            systems, workloads, params_of(args), root, output, args, argv,
        )
    finally:
        if args.keep:
            print(f"cell folders kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _choose(given: str | None, known: list[str], what: str) -> list[str]:
    if not given:
        return known
    chosen = [g.strip() for g in given.split(",") if g.strip()]
    lowered = {k.lower(): k for k in known}
    unknown = [c for c in chosen if c.lower() not in lowered]
    if unknown:
        raise SystemExit(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    picked = {lowered[c.lower()] for c in chosen}
    return [k for k in known if k in picked]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
