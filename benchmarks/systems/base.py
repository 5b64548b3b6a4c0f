"""The interface every benchmarked system implements, and the worker processes they share.

::

    run.py (orchestrator) ──▶ one cell process per (system, workload), with a timeout
      cell: system.check()                 can it run here at all? (else "n/a: why")
            system.start_workers(spec)  ──▶ worker tree: a subprocess + its children,
                                            logging to its own file, ready when the
                                            system says so (log line, registry, marker)
            workloads.W?(system, ...)       send / wait from the cell process itself
            system.stop()                   SIGTERM by PID, then kill what is left of the
                                            tree with psutil, then check nothing survived

A system is a broker plus its idiomatic client calls: ``send_noop`` / ``send_burn``
return a handle, ``wait`` turns a handle into a value or raises. The workloads never see
anything else, so they stay the same for every system.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "BENCH_DIR",
    "PEERS_REDIS_URL",
    "TASKS_DIR",
    "System",
    "Unavailable",
    "WorkerGroup",
    "WorkerSpec",
    "bin_path",
    "flush_redis_db",
    "version_of",
]

BENCH_DIR = Path(__file__).resolve().parent.parent
TASKS_DIR = BENCH_DIR / "tasks"
VENV_BIN = Path(sys.executable).parent

#: every peer shares this database; it is flushed before each cell and nothing else is.
PEERS_REDIS_URL = "redis://127.0.0.1:6379/14"

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


class Unavailable(Exception):
    """The system cannot run here; the message says why (recorded as "n/a: why")."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """How many worker processes, and what they are tuned for.

    ``profile``: ``throughput`` (many short tasks: deep prefetch, threads where the peer
    has them), ``latency`` (one task at a time), ``cpu`` (CPU-bound tasks: fair
    scheduling, one thread per process) or ``idle`` (the default settings, for memory).
    """

    processes: int
    profile: str


def version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def flush_redis_db(url: str) -> None:
    """FLUSHDB on the one database ``url`` names (never FLUSHALL)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


class WorkerGroup:
    """One worker command and every process it starts, stopped by PID at the end."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], log_path: Path, pid_file: Path
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.pid_file = pid_file
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=TASKS_DIR, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )
        self.root = psutil.Process(self.proc.pid)
        self.known: dict[int, psutil.Process] = {self.root.pid: self.root}
        self._record()

    def tree(self) -> list[psutil.Process]:
        """The live processes of the group (children found so far are remembered, so a
        child orphaned by its parent's death is still stopped)."""
        try:
            for child in self.root.children(recursive=True):
                self.known.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        self._record()
        return [p for p in self.known.values() if _alive(p)]

    def _record(self) -> None:
        # The orchestrator kills these if this cell process itself has to be killed.
        entries = [{"pid": p.pid, "created": p.create_time()} for p in self.known.values()
                   if _alive(p)]
        self.pid_file.write_text(json.dumps(entries))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self, what: str) -> None:
        if not self.alive():
            raise RuntimeError(
                f"the worker exited with code {self.proc.returncode} {what}; its log ends:\n"
                f"{self.log_tail()}"
            )

    def uss_bytes(self) -> tuple[int, int]:
        """USS summed over the whole tree, and how many processes that is."""
        total = count = 0
        for p in self.tree():
            try:
                total += p.memory_full_info().uss
                count += 1
            except psutil.NoSuchProcess:
                pass
        return total, count

    def stop(self) -> list[str]:
        """SIGTERM the root by PID; whatever is still alive after the grace period is
        killed. Returns a note for each process that had to be killed."""
        procs = self.tree()
        notes: list[str] = []
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                notes.append(f"root pid {self.proc.pid} ignored SIGTERM for {STOP_GRACE_S}s")
        # Children get a moment to follow their parent out before they are killed.
        _, alive = psutil.wait_procs([p for p in procs if _alive(p)], timeout=3)
        for p in alive:
            notes.append(f"killed leftover pid {p.pid} ({_name(p)})")
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        survivors = [p for p in self.known.values() if _alive(p)]
        if survivors:
            notes.append("SURVIVED: " + ", ".join(str(p.pid) for p in survivors))
        self._record()
        return notes


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _name(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()[:3])
    except psutil.Error:
        return "?"


class System(ABC):
    """A task queue as the workloads see it. One instance lives in one cell process."""

    #: the key used on the command line and in the tables
    name: str
    #: the distributions whose versions the report lists
    distributions: tuple[str, ...] = ()
    #: the module under ``benchmarks/tasks/`` that the workers load
    task_module: str
    #: the client calls and settings, for the report
    client: str = ""
    #: whether W1m (a batch send) applies: taskmill only
    batch_send: bool = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.group: WorkerGroup | None = None
        self._tasks: Any = None

    # -- what each system provides -------------------------------------------------------

    def check(self) -> None:
        """Raise Unavailable (with the reason) if this system cannot run here."""
        return None

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        """Environment for the task module, in this process and in the workers."""
        return {}

    def prepare(self) -> None:
        """Start clean: flush this system's Redis database, or use a fresh file."""
        return None

    @abstractmethod
    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        """The worker command line (run in ``benchmarks/tasks``)."""

    @abstractmethod
    def is_ready(self, spec: WorkerSpec) -> bool:
        """True once the workers will take tasks."""

    @abstractmethod
    def send_noop(self) -> Any:
        """Send one no-op task with the peer's single-send call; return its handle."""

    @abstractmethod
    def send_burn(self, cpu_ms: float) -> Any:
        """Send one task that burns ``cpu_ms`` of CPU time."""

    @abstractmethod
    def wait(self, handle: Any, timeout: float) -> Any:
        """The task's value; raise if it failed or ``timeout`` seconds pass."""

    def check_batch_send(self) -> None:
        """Raise Unavailable unless ``send_map`` works (W1m is for taskmill only)."""
        raise Unavailable("W1m is measured for taskmill only")

    def send_map(self, n: int) -> Any:
        """W1m: send ``n`` no-op calls with the system's batch call; a batch handle."""
        raise Unavailable("no batch send in this system")

    def wait_batch(self, batch: Any, timeout: float) -> list[Any]:
        """W1m: every value of a ``send_map`` batch; raise after ``timeout`` seconds."""
        raise Unavailable("no batch send in this system")

    # -- shared behaviour --------------------------------------------------------------

    @property
    def tasks(self) -> Any:
        """The task module, imported in this (client) process."""
        if self._tasks is None:
            import importlib

            if str(TASKS_DIR) not in sys.path:
                sys.path.insert(0, str(TASKS_DIR))
            self._tasks = importlib.import_module(self.task_module)
        return self._tasks

    @property
    def ready_dir(self) -> Path:
        """Where task modules drop a marker file per ready worker process."""
        path = self.workdir / "ready"
        path.mkdir(exist_ok=True)
        return path

    def ready_markers(self) -> int:
        return len(list(self.ready_dir.iterdir()))

    def send_many(self, n: int) -> list[Any]:
        return [self.send_noop() for _ in range(n)]

    def wait_all(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        values = []
        for handle in handles:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"results not all in within {timeout:.0f}s")
            values.append(self.wait(handle, left))
        return values

    def start_workers(self, spec: WorkerSpec) -> WorkerGroup:
        env = self.env(spec)
        os.environ.update(env)
        os.environ["BENCH_READY_DIR"] = str(self.ready_dir)
        os.environ["BENCH_PROFILE"] = spec.profile
        self.prepare()
        self.tasks  # noqa: B018 - import the client side before the workers start
        worker_env = dict(os.environ)
        worker_env["PYTHONPATH"] = os.pathsep.join(
            [str(TASKS_DIR), *filter(None, [worker_env.get("PYTHONPATH")])]
        )
        worker_env["PYTHONUNBUFFERED"] = "1"
        self.group = WorkerGroup(
            self.worker_argv(spec), worker_env, self.workdir / "worker.log",
            self.workdir / "pids.json",
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.is_ready(spec):
            self.group.check_alive("before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the workers were not ready within {READY_TIMEOUT_S:.0f}s; log ends:\n"
                    f"{self.group.log_tail()}"
                )
            time.sleep(0.05)
        return self.group

    def stop(self) -> list[str]:
        if self.group is None:
            return []
        notes = self.group.stop()
        self.close()
        return notes

    def close(self) -> None:
        """Release client-side connections."""
        return None

    def versions(self) -> dict[str, str]:
        return {d: version_of(d) for d in self.distributions}


def bin_path(script: str) -> str:
    """A console script of the benchmark's own virtual environment."""
    return str(VENV_BIN / script)
