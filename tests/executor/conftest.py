"""Executors for the tests: one that owns local workers, one bound to a Redis app.

::

    local:  Executor(max_workers=2) ──▶ its own temporary SQLite broker + worker tree
    redis:  Executor(app=execapp.app) ──▶ Redis (db 15, a prefix of the test's own)
                                            ▲
            python -m taskmill worker -A execapp -c 2   (started here, stopped by pid)

``executor_kind`` parametrizes a test over both. Workers of the Redis app import the
callables from ``executor_calls`` (``tests/executor`` is on their ``PYTHONPATH``) and the
app from ``execapp.py`` in the test's ``tmp_path``. Every executor made with
``make_executor`` is shut down at teardown; worker processes are stopped by the
``reaper``; the test's Redis keys are deleted.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from integration.conftest import READY, Worker, Workspace
from redis_server import delete_prefix, redis_url_or_skip
from taskmill import Executor

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent

APP_MODULE = """\
from taskmill import App

app = App("execapp", broker={broker!r}, serializer="pickle", signing_key={key!r}, lease_s=2)
"""


class RedisApp:
    """A pickle app on the shared Redis (its own prefix), and its worker processes."""

    def __init__(self, path: Path, reaper: Any) -> None:
        self.path = path
        self.reaper = reaper
        self.url = redis_url_or_skip(db=15)
        self.prefix = f"tmexec-{uuid.uuid4().hex[:12]}"
        self.broker = f"{self.url}?prefix={self.prefix}"
        self.key = uuid.uuid4().hex
        (path / "execapp.py").write_text(APP_MODULE.format(broker=self.broker, key=self.key))
        spec = importlib.util.spec_from_file_location("execapp", path / "execapp.py")
        assert spec is not None and spec.loader is not None
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.app = self.module.app
        self.workers: list[Worker] = []

    def start_worker(self, concurrency: int = 2) -> Worker:
        log_path = self.path / f"worker-{len(self.workers)}.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(HERE), str(TESTS), os.environ.get("PYTHONPATH")])
            ),
        }
        command = [sys.executable, "-m", "taskmill", "worker", "-A", "execapp"]
        command += ["-c", str(concurrency), "--grace", "3", "--loglevel", "info"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=self.path, env=env, stdout=log, stderr=log)
        worker = Worker(self.reaper.watch(process), log_path, self.reaper)
        self.workers.append(worker)
        worker.wait_for_log(READY)
        worker.wait_for_children(concurrency)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.app.close()
        delete_prefix(self.url, self.prefix)
        for worker in self.workers:
            print(f"--- {worker.log_path.name} (pid {worker.pid}) ---\n{worker.log()}")


@pytest.fixture
def redis_app(tmp_path: Path, reaper: Any) -> Iterator[RedisApp]:
    found = RedisApp(tmp_path, reaper)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(params=["local", "redis"])
def executor_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Executors:
    """Makes Executors of one kind for a test; shuts them down at its end."""

    def __init__(self, kind: str, tmp_path: Path, reaper: Any) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.reaper = reaper
        self.made: list[Executor] = []
        self.redis_app: RedisApp | None = None

    def __call__(self, **kwargs: Any) -> Executor:
        if self.kind == "local":
            kwargs.setdefault("max_workers", 2)
        else:
            if self.redis_app is None:
                self.redis_app = RedisApp(self.tmp_path, self.reaper)
                self.redis_app.start_worker(2)
            kwargs["app"] = self.redis_app.app
        executor = Executor(**kwargs)
        self.made.append(executor)
        return executor

    def worker_pids(self, executor: Executor) -> list[int]:
        """Pids of the processes running the executor's calls (not their supervisor)."""
        dispatcher = executor._dispatcher
        assert dispatcher is not None
        if dispatcher.pool is None:
            assert self.redis_app is not None
            return [pid for worker in self.redis_app.workers for pid in worker.children()]
        assert dispatcher.pool.process is not None
        supervisor = psutil.Process(dispatcher.pool.process.pid)
        return [p.pid for p in supervisor.children() if p.status() != psutil.STATUS_ZOMBIE]

    def close(self) -> None:
        for executor in self.made:
            executor.shutdown(wait=True, cancel_futures=True)
        if self.redis_app is not None:
            self.redis_app.close()


@pytest.fixture
def make_executor(executor_kind: str, tmp_path: Path, reaper: Any) -> Iterator[Executors]:
    """``make_executor(**kwargs)``: an Executor of this test's kind, shut down at the end."""
    executors = Executors(executor_kind, tmp_path, reaper)
    try:
        yield executors
    finally:
        executors.close()


@pytest.fixture
def workspace(tmp_path: Path, reaper: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The integration suite's workspace: a tasks module, its workers, its client."""
    space = Workspace(tmp_path, reaper)
    monkeypatch.setenv("TASKMILL_BROKER", space.broker_url)
    try:
        yield space
    finally:
        space.close()
