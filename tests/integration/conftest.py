"""Real workers in real processes: the ``workspace`` fixture.

A workspace is the test's ``tmp_path`` seen as a user's project directory: it holds a
tasks module and the SQLite broker file, workers run there as ``python -m taskmill
worker -A tasks`` (cwd = the workspace, ``TASKMILL_BROKER`` pointing at its database,
``tests/`` on ``PYTHONPATH`` for :mod:`faults`), and the test process imports the same
tasks module as the client.

::

    test process (client)                         workspace = tmp_path
      import tasks  ──delay()──▶  broker.db  ◀──reserve/ack── worker (supervisor pid)
      Result.get()  ◀──results──                                ├─ child
                                                                └─ child

Everything is stopped by pid when the test ends (see ``reaper`` in ``tests/conftest.py``);
the client's app is closed and its module removed from ``sys.modules``, since every test
writes a module called ``tasks``. Worker logs are printed at teardown, so pytest shows
them with a failure.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from taskmill.brokers import open_broker

TESTS_DIR = Path(__file__).resolve().parent.parent
READY = "ready:"

#: the tasks module most tests run; ``{settings}`` are App keyword arguments, and a test
#: appends its own task definitions
TASKS_MODULE = """\
import faults
from taskmill import App

app = App("tasks", {settings})

square = app.task(faults.square)
whoami = app.task(faults.whoami)
clock = app.task(faults.clock)
logged_square = app.task(faults.logged_square)
logged_sleep = app.task(faults.logged_sleep)
"""


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Worker:
    """A ``taskmill worker`` process: its supervisor pid, its log, its children."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, reaper: Any) -> None:
        self.process = process
        self.log_path = log_path
        self.reaper = reaper

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        """Wait until ``text`` appears in the worker's stderr; fail if it exits first."""

        def seen() -> bool:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker exited with {self.process.returncode} before logging {text!r}:\n"
                    + self.log()
                )
            return False

        wait_until(seen, timeout, f"{text!r} in the worker log")

    def children(self) -> list[int]:
        """Pids of the supervisor's live children (none once it has exited)."""
        if self.process.poll() is not None:
            return []
        return sorted(p.pid for p in self.reaper.children_of(self.pid))

    def wait_for_children(self, count: int, timeout: float = 10.0) -> list[int]:
        return list(
            wait_until(
                lambda: (pids := self.children()) and len(pids) == count and pids,
                timeout,
                f"{count} live worker children",
            )
        )

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test if the worker is still running after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.pid} still running after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        self.reaper.stop(self.process)


class Workspace:
    """A project directory with a tasks module, a broker, workers and a client."""

    wait_until = staticmethod(wait_until)
    alive = staticmethod(alive)

    def __init__(self, path: Path, reaper: Any) -> None:
        self.path = path
        self.reaper = reaper
        self.broker_url = f"sqlite:///{path / 'broker.db'}"
        self.env = {
            **os.environ,
            "TASKMILL_BROKER": self.broker_url,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])
            ),
        }
        self.workers: list[Worker] = []
        self.modules: list[ModuleType] = []

    def file(self, name: str) -> str:
        """The path of a file in the workspace (an execution log, a marker), as a str."""
        return str(self.path / name)

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(textwrap.dedent(text))
        return target

    def write_tasks(
        self, extra: str = "", settings: str = "lease_s=2", name: str = "tasks"
    ) -> Path:
        """Write the standard tasks module, with ``extra`` task definitions appended."""
        return self.write(
            f"{name}.py", TASKS_MODULE.format(settings=settings) + textwrap.dedent(extra)
        )

    def import_tasks(self, name: str = "tasks") -> ModuleType:
        """Import the workspace's tasks module into the test process, as the client."""
        spec = importlib.util.spec_from_file_location(name, self.path / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # results rebuild a task's own exceptions from here
        self.modules.append(module)
        spec.loader.exec_module(module)
        return module

    def start_worker(
        self,
        *args: str,
        concurrency: int = 1,
        target: str = "tasks",
        grace: float = 3.0,
    ) -> Worker:
        """Start ``python -m taskmill worker -A target -c N ARGS`` here; wait until ready."""
        command = [sys.executable, "-m", "taskmill", "worker", "-A", target]
        command += ["-c", str(concurrency), "--grace", str(grace), "--loglevel", "info", *args]
        worker = self.spawn(command)
        worker.wait_for_log(READY)
        worker.wait_for_children(concurrency)
        return worker

    def spawn(self, command: list[str], env: dict[str, str] | None = None) -> Worker:
        """Start a worker command as given, here; its output goes to a log file, which,
        unlike a pipe nobody reads, can never fill up and block it."""
        log_path = self.path / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=self.path, env=env or self.env, stdout=log, stderr=log
            )
        worker = Worker(self.reaper.watch(process), log_path, self.reaper)
        self.workers.append(worker)
        return worker

    def run_cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m taskmill ARGS`` here to completion."""
        return subprocess.run(
            [sys.executable, "-m", "taskmill", *args],
            check=False,
            cwd=self.path,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for module in self.modules:
            app = getattr(module, "app", None)
            if app is not None:
                app.close()
            if sys.modules.get(module.__name__) is module:
                del sys.modules[module.__name__]
        for worker in self.workers:
            print(f"--- {worker.log_path.name} (pid {worker.pid}) ---\n{worker.log()}")


def create_database(url: str) -> None:
    """Create the broker's database before any worker starts.

    Several processes opening a brand-new SQLite file at the same moment can get
    "database is locked" while one of them switches it to WAL (see
    ``test_many_processes_opening_a_brand_new_database_at_once_all_succeed``); tests about something
    else start from a database that exists, as a deployed one does.
    """
    open_broker(url).close()


@pytest.fixture
def workspace(tmp_path: Path, reaper: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    space = Workspace(tmp_path, reaper)
    create_database(space.broker_url)
    monkeypatch.setenv("TASKMILL_BROKER", space.broker_url)
    try:
        yield space
    finally:
        space.close()
