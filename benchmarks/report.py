"""The machine, the versions, and the tables: absolute figures and ratios vs taskmill."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from systems import SYSTEMS, WorkerSpec
from systems.base import PEERS_REDIS_URL, version_of

__all__ = [
    "cell_summary",
    "machine_info",
    "machine_line",
    "markdown",
    "params_dict",
    "tables",
    "versions",
    "write_doc",
]

ROOT = Path(__file__).resolve().parent.parent

#: (column title, workload, metric, format, higher is better)
COLUMNS: list[tuple[str, str, str, str, bool]] = [
    ("W1 tasks/s", "W1", "tasks_per_s", "{:,.0f}", True),
    ("W1m tasks/s", "W1m", "tasks_per_s", "{:,.0f}", True),
    ("W1m 100k items/s", "W1m", "items_per_s_large", "{:,.0f}", True),
    ("W2 p50 ms", "W2", "p50_ms", "{:.2f}", False),
    ("W2 p99 ms", "W2", "p99_ms", "{:.2f}", False),
    ("W3 efficiency", "W3", "efficiency", "{:.0%}", True),
    ("W5 idle USS MiB", "W5", "uss_mib", "{:.1f}", False),
]
REFERENCES = ("taskmill-sqlite", "taskmill-redis")

#: this report's part of the document; other tools keep their own marked parts there
START = "<!-- peers-benchmark:start -->"
END = "<!-- peers-benchmark:end -->"
_OTHER_PART = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)


def write_doc(path: Path, body: str) -> None:
    """Put ``body`` in ``path`` between this report's markers. Everything else already
    there (another benchmark's marked section) is kept; a file without the markers
    gets this report on top, and only the other tools' marked sections are kept."""
    part = f"{START}\n{body.strip()}\n{END}"
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + part + rest.split(END, 1)[1]
    else:
        others = [m.group(0) for m in _OTHER_PART.finditer(text) if START not in m.group(0)]
        text = "\n\n".join([part, *others])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")


# -- facts ------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    return {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical ({psutil.cpu_count(logical=False)} physical)",
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{_os_name()}, Linux kernel {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis": _redis_version(),
    }


def machine_line(m: dict[str, str]) -> str:
    return (f"machine: {m['cpu']}, {m['cores']}, {m['ram']} RAM, {m['os']}, "
            f"{m['python']}, Redis {m['redis']}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _redis_version() -> str:
    try:
        import redis

        client = redis.Redis.from_url(PEERS_REDIS_URL)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"


def versions(systems: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in systems:
        found.update({d: version_of(d) for d in SYSTEMS[name].distributions})
    for extra in ("redis", "hiredis", "psutil"):
        found[f"{extra} (client)" if extra == "redis" else extra] = version_of(extra)
    found["taskmill revision"] = _revision()
    return found


def _revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "working tree (no commit yet)"
    return out.stdout.strip() + (" + uncommitted changes in src/" if dirty else "")


def params_dict(params: Any) -> dict[str, Any]:
    return asdict(params)


# -- formatting -------------------------------------------------------------------------


def cell_summary(key: str, result: dict[str, Any]) -> str:
    wall = f" [{result['wall_s']:.0f}s]" if "wall_s" in result else ""
    if result["status"] != "ok":
        return f"{result['status']}: {result['reason']}{wall}"
    m = result["metrics"]
    text = {
        "W1": lambda: f"{m['tasks_per_s']:,.0f} tasks/s ({m['seconds']:.1f}s)",
        "W1m": lambda: f"{m['tasks_per_s']:,.0f} tasks/s, "
                       f"{m.get('items_per_s_large', 0):,.0f} items/s at 100k",
        "W2": lambda: f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms",
        "W3": lambda: f"efficiency {m['efficiency']:.0%} ({m['seconds']:.2f}s, ideal "
                      f"{m['ideal_seconds']:.2f}s)",
        "W5": lambda: f"{m['uss_mib']:.1f} MiB USS in {m['processes']} processes",
    }[key]()
    notes = f" (notes: {'; '.join(result['notes'])})" if result.get("notes") else ""
    outside = result.get("outside_load_cores", 0.0)
    busy = f" (other programs used {outside:.2f} cores meanwhile)" if outside >= 0.1 else ""
    return text + wall + notes + busy


def _skewed(data: dict[str, Any], system: str, workload: str) -> bool:
    """Did programs outside the run use the CPUs during this cell? (Memory at rest, W5,
    does not depend on CPU load.)"""
    result = data["results"].get(system, {}).get(workload) or {}
    return (workload != "W5" and result.get("status") == "ok"
            and result.get("outside_load_cores", 0.0) >= data.get("quiet_cores", 0.1))


def _cell(data: dict[str, Any], system: str, workload: str, metric: str) -> float | None:
    result = data["results"].get(system, {}).get(workload)
    if not result or result["status"] != "ok":
        return None
    value = result["metrics"].get(metric)
    return None if value is None else float(value)


def _mark(data: dict[str, Any], system: str, workload: str) -> str:
    result = data["results"].get(system, {}).get(workload)
    if result is None:
        return "—"
    if result["status"] == "n/a":
        return "—" if workload == "W1m" and not SYSTEMS[system].batch_send else "n/a"
    return "failed"


def _columns(data: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    present = {w for r in data["results"].values() for w in r}
    return [c for c in COLUMNS if c[1] in present]


def absolute_table(data: dict[str, Any]) -> str:
    cols = _columns(data)
    rows = ["| system | " + " | ".join(c[0] for c in cols) + " |",
            "|---|" + "---:|" * len(cols)]
    for system in data["results"]:
        cells = []
        for _title, workload, metric, fmt, _hib in cols:
            value = _cell(data, system, workload, metric)
            text = _mark(data, system, workload) if value is None else fmt.format(value)
            if value is not None and workload == "W5":
                procs = data["results"][system]["W5"]["metrics"]["processes"]
                text += f" ({procs} procs)"
            if _skewed(data, system, workload):
                text += " †"
            cells.append(text)
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratio_table(data: dict[str, Any], reference: str) -> str | None:
    cols = [c for c in _columns(data) if c[1] != "W1m"]
    if not any(_cell(data, reference, c[1], c[2]) is not None for c in cols):
        return None
    heads = [f"{c[0]} ({'higher' if c[4] else 'lower'} is better)" for c in cols]
    rows = ["| system | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(cols)]
    for system in data["results"]:
        cells = []
        for _title, workload, metric, _fmt, _hib in cols:
            ref = _cell(data, reference, workload, metric)
            value = _cell(data, system, workload, metric)
            cells.append("—" if ref is None or value is None or ref == 0
                         else f"{value / ref:.2f}x")
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def tables(data: dict[str, Any]) -> str:
    parts = [absolute_table(data)]
    for reference in REFERENCES:
        table = ratio_table(data, reference)
        if table:
            parts += [f"\nvalue / {reference}:", table]
    return "\n".join(parts)


def _problems(data: dict[str, Any]) -> list[str]:
    lines = []
    for system, cells in data["results"].items():
        for workload, result in cells.items():
            if result["status"] == "n/a" and (
                workload != "W1m" or SYSTEMS[system].batch_send
            ):
                lines.append(f"- **{system} {workload}: n/a** — {result['reason']}")
            elif result["status"] == "failed":
                lines.append(f"- **{system} {workload}: failed** — {result['reason']}")
            for note in result.get("notes") or []:
                lines.append(f"- {system} {workload}: {note}")
    skewed = [
        f"{system} {workload} ({result['outside_load_cores']:.2f})"
        for system, cells in data["results"].items()
        for workload, result in cells.items()
        if _skewed(data, system, workload)
    ]
    if skewed:
        lines.append(
            "- † other programs on the machine used CPU during these cells (average cores "
            "in brackets), so their figures may be skewed: " + ", ".join(skewed)
        )
    return lines


def _settings(data: dict[str, Any]) -> list[str]:
    rows = ["| system | worker command (W1; W2 uses 1 process) | client calls and settings |",
            "|---|---|---|"]
    for system in data["results"]:
        cls = SYSTEMS[system]
        argv = cls(Path("CELL")).worker_argv(WorkerSpec(2, "throughput"))
        head = Path(argv[0]).name
        shown = " ".join(["python" if head.startswith("python") else head, *argv[1:]])
        rows.append(f"| {system} | `{shown}` | {cls.client} |")
    return rows


def markdown(data: dict[str, Any]) -> str:
    m, p = data["machine"], data["params"]
    quick = " (a --quick smoke run: small N, not for quoting)" if data["quick"] else ""
    out = [
        "# Benchmarks: taskmill side by side with Celery, Dramatiq, RQ and Huey",
        "",
        f"Measured {data['finished']}{quick}, all systems in one run, one after the other "
        f"(one worker group alive at a time), on the machine described below. The whole "
        f"run took {data['elapsed_s'] / 60:.1f} minutes; programs outside the run used "
        f"{data['outside_load_cores']:.2f} of the 2 cores on average meanwhile.",
        "",
        "```",
        data["command"],
        "```",
        "",
        "`benchmarks/run.py` creates (or updates) its own virtual environment, "
        "`benchmarks/.venv`, installs the peers from `benchmarks/requirements.txt` and "
        "taskmill itself (editable) into it, and re-executes itself there; see "
        "[benchmarks/README.md](../benchmarks/README.md).",
        "",
        "## Results",
        "",
        absolute_table(data),
        "",
        "`n/a`: the system cannot run that workload yet (the reason is under *Notes*); "
        "`—`: not applicable; †: other programs used the CPUs during that cell (see "
        "*Notes*).",
        "",
    ]
    for reference in REFERENCES:
        table = ratio_table(data, reference)
        if table:
            out += [f"### Ratios: each figure / {reference}'s", "", table, ""]
    out += [
        "## What is measured",
        "",
        f"- **W1** — {p['w1_tasks']:,} no-op tasks sent with a `.delay()` loop (or the "
        "peer's single-send call), then every result awaited in order; tasks/s from the "
        "first send to the last result. 2 worker processes.",
        "- **W1m** — the same with one batch call (`Task.map`); for taskmill only, and "
        "skipped until `Task.map` exists.",
        f"- **W2** — {p['w2_round_trips']} sequential send → wait-for-result round trips "
        "against 1 worker process; p50 and p99 (nearest rank) in milliseconds.",
        f"- **W3** — {p['w3_tasks']} tasks of {p['w3_cpu_ms']:g} ms of CPU each (a busy loop "
        "on the thread's CPU clock, not a sleep), 2 worker processes; parallel efficiency "
        f"= ({p['w3_tasks']} * {p['w3_cpu_ms'] / 1000:g} s) / (2 * wall time), the median "
        f"of {p['w3_rounds']} rounds on the same workers.",
        f"- **W5** — the consumer side at rest: the whole worker process tree (supervisor "
        f"or main process and its children) {p['w5_idle_s']:g} s after it is ready, no "
        "task sent; USS (`psutil` `memory_full_info().uss`) summed over the tree.",
        "",
        f"W1, W2 and W3 start with {p['warmup']} untimed warm-up tasks. Every figure is "
        f"the median of {data.get('rounds', 1)} round(s): in each round the workloads "
        "run one after the other, and for each workload the systems take turns, so a "
        "change in the machine's speed during the run hits the systems of a workload "
        "alike. Each (system, workload) cell runs in its own process with a fresh worker group, a "
        "flushed Redis database (db 14 for the peers, db 13 for taskmill) or a fresh "
        "SQLite file, and a timeout; workers are stopped by PID (SIGTERM, then the tree "
        "is killed) and the run checks that no process is left behind. Before each "
        "cell the run waits (a bounded while) until programs outside it use under "
        f"{data['quiet_cores']:g} cores, and it records what they used during the cell; "
        "a cell they disturbed (W5 aside: memory does not depend on CPU load) is run "
        "again, and the less disturbed attempt counts.",
        "",
        "## Systems and settings",
        "",
        *_settings(data),
        "",
        "Each peer uses its idiomatic fast settings with its results on Redis. Things "
        "to know when reading the figures:",
        "",
        "- Every system awaits W1's results the same way, one handle after the other "
        "with its own blocking call; none uses a peer's group/collective wait (Celery's "
        "`ResultSet.join_native`, for one), which taskmill has no counterpart for yet.",
        "- RQ runs its default `Worker`, which forks a work horse for every job: that "
        "fork is most of its cost in W1, W2 and W3.",
        "- SqliteHuey cannot block on a read, so its workers poll; their polling "
        "(default 0.1 s growing to 10 s) is set to 1 ms doubling to 50 ms, the same as "
        "taskmill's SQLite broker. Its client's `result.get(blocking=True)` polls every "
        "50 ms or more, which is its W2 latency.",
        "- Huey keeps no result for a task that returns `None` unless `store_none=True`, "
        "which both Huey configurations set (the no-op task returns `None` everywhere).",
        "- The worker trees differ in shape: Huey adds a scheduler process, RQ's pool "
        "parent runs beside its workers; W5 counts every process of the tree.",
        "- `redis-floor` is not a peer but a yardstick: a hand-written JSON queue on "
        "redis-py (`LPUSH` per message, 2 forked processes looping on `BRPOP`, the result "
        "pushed onto a list the client pops), with no lease, no retry, no "
        "acknowledgement — a worker that dies loses its message. It shows what this "
        "machine allows in the same run.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']} |",
        f"| cores | {m['cores']} |",
        f"| RAM | {m['ram']} |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| Redis | {m['redis']} (127.0.0.1:6379, same machine) |",
        "",
        "## Versions",
        "",
        "| package | version |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in data["versions"].items()],
        "",
        "## Notes",
        "",
        *(_problems(data) or ["- every cell ran."]),
        f"- processes left behind at the end: "
        f"{', '.join(data['leftovers']) if data['leftovers'] else 'none'}.",
        "",
    ]
    return "\n".join(out)
