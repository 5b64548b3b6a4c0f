"""Runs the cells one after the other, each in its own process with a timeout.

With ``--rounds N`` every cell runs N times: round by round, and within a round workload
by workload, the systems taking turns, so a change in the machine's speed during the run
hits every system of a workload alike. Each figure reported is the median of its rounds.

Before each cell the orchestrator waits (a bounded while) for the machine to be quiet:
another program using the cores skews every figure. The load from outside during each
cell is recorded, and the report flags the cells it may have skewed.

A cell that overruns is killed with its whole process tree (and any worker process it
recorded in its pid file, should one have been orphaned) and recorded as failed; the run
goes on with the next cell. At the end the orchestrator checks that no process of the run
is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import report
from load import ForeignLoad
from systems import SYSTEMS
from workloads import WORKLOADS

__all__ = ["run"]

RUN_PY = Path(__file__).resolve().parent / "run.py"
OUT_DIR = Path(__file__).resolve().parent / "out"

#: outside load (in cores) under which the machine counts as quiet
QUIET_CORES = 0.10


def run(
    systems: list[str],
    workloads: list[str],
    params: Any,
    root: Path,
    output: Path,
    args: argparse.Namespace,
    argv: list[str],
) -> int:
    started = time.time()
    machine = report.machine_info()
    print(report.machine_line(machine), flush=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    pid_files: list[Path] = []
    load = ForeignLoad()
    run_before = load.snapshot()
    quiet_budget = [args.quiet_budget]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {k: [] for k in workloads}
                                                        for s in systems}
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
        for key in workloads:
            for system in systems:
                if key == "W1m" and not SYSTEMS[system].batch_send:
                    runs[system][key] = [{"status": "n/a",
                                          "reason": "W1m is for taskmill only"}]
                    continue
                cell = root / f"{system}-{key}-r{round_ + 1}"
                runs[system][key].append(
                    _run_least_disturbed(system, key, cell, params, args, load, quiet_budget,
                                         pid_files))
    results = {s: {k: _median_of(runs[s][k]) for k in workloads} for s in systems}
    leftovers = _leftovers(pid_files)
    elapsed = time.time() - started
    data = {
        "command": os.environ.get("BENCH_COMMAND", "python benchmarks/run.py " + " ".join(argv)),
        "quick": args.quick,
        "rounds": args.rounds,
        "params": report.params_dict(params),
        "machine": machine,
        "versions": report.versions(systems),
        "results": results,
        "leftovers": leftovers,
        "elapsed_s": elapsed,
        "outside_load_cores": load.cores(run_before, load.snapshot()),
        "quiet_cores": QUIET_CORES,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "results.json").write_text(json.dumps(data, indent=2))
    report.write_doc(output, report.markdown(data))
    print()
    print(report.tables(data))
    print(f"\nprocesses left behind: {', '.join(leftovers) if leftovers else 'none'}")
    print(f"run took {elapsed:.0f}s; report written to {output}")
    return 1 if leftovers else 0


def _run_least_disturbed(
    system: str, key: str, cell: Path, params: Any, args: argparse.Namespace,
    load: ForeignLoad, quiet_budget: list[float], pid_files: list[Path],
) -> dict[str, Any]:
    """One cell, run again (up to --retry-skewed times) while programs outside the run
    disturbed it; the least disturbed attempt."""
    result: dict[str, Any] = {}
    for attempt in range(1 + args.retry_skewed):
        cell_dir = cell.with_name(f"{cell.name}-{attempt + 1}")
        cell_dir.mkdir()
        pid_files.append(cell_dir / "pids.json")
        _wait_quiet(load, args.quiet_wait, quiet_budget)
        print(f"  {system:<16} {key:<4} ... ", end="", flush=True)
        before = load.snapshot()
        fresh = _run_cell(system, key, cell_dir, params, args)
        fresh["outside_load_cores"] = load.cores(before, load.snapshot())
        fresh["attempt"] = attempt + 1
        print(report.cell_summary(key, fresh), flush=True)
        if not result or fresh["outside_load_cores"] < result["outside_load_cores"]:
            result = fresh
        if not _worth_retrying(key, result):
            break
    return result


def _median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell's rounds as one result: each figure the median over the rounds that ran;
    if none ran, the last round's failure."""
    ok = [r for r in rounds if r["status"] == "ok"]
    if not ok:
        return rounds[-1]
    merged = dict(ok[0])
    merged["metrics"] = {name: _median([r["metrics"][name] for r in ok])
                         for name in ok[0]["metrics"]}
    merged["outside_load_cores"] = statistics.mean(r["outside_load_cores"] for r in ok)
    merged["wall_s"] = sum(r.get("wall_s", 0.0) for r in ok)
    merged["rounds"] = len(ok)
    merged["notes"] = sorted({n for r in ok for n in r.get("notes", [])})
    return merged


def _median(values: list[Any]) -> Any:
    """The median of numbers (of counts, one of them); anything else: the first."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values[0]
    if all(isinstance(v, int) for v in values):
        return statistics.median_low(values)
    return statistics.median(values)


def _worth_retrying(key: str, result: dict[str, Any]) -> bool:
    """A CPU-sensitive figure that programs outside the run may have skewed."""
    return (key != "W5" and result["status"] == "ok"
            and result["outside_load_cores"] >= QUIET_CORES)


def _wait_quiet(load: ForeignLoad, max_wait: float, budget: list[float]) -> None:
    """Wait for quiet, at most ``max_wait`` seconds and at most what is left of the run's
    ``budget`` (a one-item list, spent as it goes)."""
    max_wait = min(max_wait, budget[0])
    if max_wait <= 0:
        return
    cores = load.wait_quiet(QUIET_CORES, window=0.5, max_wait=0)
    if cores < QUIET_CORES:
        return
    print(f"  (other programs use {cores:.2f} cores: waiting up to {max_wait:.0f}s for quiet)",
          flush=True)
    began = time.monotonic()
    cores = load.wait_quiet(QUIET_CORES, window=1.0, max_wait=max_wait)
    budget[0] -= time.monotonic() - began
    if cores >= QUIET_CORES:
        print(f"  (still {cores:.2f} cores busy elsewhere: going on)", flush=True)


def _run_cell(
    system: str, key: str, cell_dir: Path, params: Any, args: argparse.Namespace
) -> dict[str, Any]:
    argv = [sys.executable, str(RUN_PY), "--cell", system, key, "--cell-dir", str(cell_dir)]
    if args.quick:
        argv.append("--quick")
    if args.w1_tasks:
        argv += ["--w1-tasks", str(args.w1_tasks)]
    timeout = WORKLOADS[key].timeout(params) * args.timeout_scale
    began = time.monotonic()
    with open(cell_dir / "cell.log", "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_cell(proc, cell_dir / "pids.json")
            return {"status": "failed", "reason": f"timed out after {timeout:.0f}s (killed)",
                    "worker_log": _tail(cell_dir / "worker.log"),
                    "wall_s": time.monotonic() - began}
    result_file = cell_dir / "result.json"
    if result_file.exists():
        result: dict[str, Any] = json.loads(result_file.read_text())
    else:
        cell_log = _tail(cell_dir / "cell.log", 40)
        last = cell_log.strip().splitlines()[-1:] or [""]
        result = {"status": "failed",
                  "reason": f"the cell process exited with {proc.returncode}: {last[0]}",
                  "traceback": cell_log}
    result["wall_s"] = time.monotonic() - began
    if result["status"] == "failed":
        OUT_DIR.mkdir(exist_ok=True)
        (OUT_DIR / f"failed-{system}-{key}.log").write_text(
            f"{result.get('traceback', '')}\n--- worker log ---\n{result.get('worker_log', '')}\n"
        )
    return result


def _kill_cell(proc: subprocess.Popen[bytes], pid_file: Path) -> None:
    victims = _recorded(pid_file)
    with contextlib.suppress(psutil.NoSuchProcess):
        victims += psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait()
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(victims, timeout=10)


def _recorded(pid_file: Path) -> list[psutil.Process]:
    """The worker processes a cell recorded, if they are still those processes."""
    found = []
    try:
        entries = json.loads(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return []
    for entry in entries:
        try:
            p = psutil.Process(entry["pid"])
            if abs(p.create_time() - entry["created"]) < 0.01 and p.status() != "zombie":
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def _leftovers(pid_files: list[Path]) -> list[str]:
    procs = {p.pid: p for p in psutil.Process().children(recursive=True)}
    for pid_file in pid_files:
        procs.update({p.pid: p for p in _recorded(pid_file)})
    notes = []
    for p in procs.values():
        try:
            notes.append(f"{p.pid} ({' '.join(p.cmdline()[:4])})")
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return notes


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""

