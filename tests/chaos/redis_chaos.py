"""What the Redis and network chaos scenarios share: the Redis suite's fixtures, a tasks
module whose every execution is visible, and a client that sends a steady stream of tasks.

::

    sender thread ──delay()──▶ private redis-server ◀── worker "A" (host or namespace)
      expected[id] = x*x  ▲        (AOF, free port)  ◀── worker "B"
                          └── only ids whose delay() returned: those are acknowledged

Every execution of ``work`` (and of ``work_by``, which also returns who ran it) appends
``x`` to the execution log (what :func:`ledger.tally` counts) and to ``<log>.<worker
name>``, so a test also sees who ran what, and when.

The fixtures are the ones of ``tests/redis/conftest.py`` (private servers, network
namespaces, workers that run in them), loaded from that file so both suites share one
definition; a test module makes the ones it uses its own (``workspace =
redis_chaos.workspace``).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faults
from taskmill import BrokerError


def _load(name: str, path: str) -> Any:
    """A module of the Redis suite, loaded from its file under a name of its own."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_fixtures = _load("redis_suite_fixtures", "redis/conftest.py")
acl = _load("redis_suite_acl", "redis/test_redis_acl.py")

workspace = _fixtures.workspace
start_redis = _fixtures.start_redis
namespaces = _fixtures.namespaces
prefix = _fixtures.prefix
RedisServer = _fixtures.RedisServer
Namespace = _fixtures.Namespace

#: appended to the standard tasks module; ``WORKER_NAME`` is set per worker
CHAOS_TASKS = """\
import os
import time


@app.task
def work(log, x, seconds):
    faults.record(log, x)
    faults.record(f"{log}.{os.environ.get('WORKER_NAME', '')}", x)
    if seconds:
        time.sleep(seconds)
    return x * x


@app.task
def work_by(log, x, seconds):
    work(log, x, seconds)
    return [x * x, os.environ.get("WORKER_NAME", "")]
"""


def runs_by(log: str, name: str) -> list[faults.Execution]:
    """The executions worker ``name`` started (tag: the task's ``x``)."""
    return faults.executions(f"{log}.{name}")


def first_run_after(log: str, name: str, moment: float) -> float | None:
    """When worker ``name`` started its first task at or after ``moment`` (Unix time)."""
    return next((e.at for e in runs_by(log, name) if e.at >= moment), None)


class Stream:
    """A thread that sends ``work(log, x, seconds)`` at ``rate`` per second until stopped.

    ``expected`` holds every id whose ``delay()`` returned (id → x*x): those are the
    acknowledged tasks that must complete. A ``delay()`` that raised (the broker was away
    past the client's reconnect window) promised nothing and is only counted.
    """

    def __init__(self, task: Any, log: str, rate: float, seconds: float) -> None:
        self.task, self.log, self.rate, self.seconds = task, log, rate, seconds
        self.expected: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # id → x
        self.tags: dict[str, str] = {}
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="stream", daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the sender is stuck"

    def _send(self) -> None:
        x = 0
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                result = self.task.delay(self.log, x, self.seconds)
            except BrokerError:
                self.refused += 1
            else:
                self.expected[result.id] = x * x
                self.sent[result.id] = x
                self.tags[result.id] = str(x)
            x += 1
            self._stop.wait(max(0.0, started + x / self.rate - time.monotonic()))


def wait_all_final(app: Any, ids: list[str], timeout: float, wait: Callable[..., Any]) -> None:
    """Wait until every id has a final result (SUCCESS or not): the tally says which."""
    from taskmill import states

    def done() -> bool:
        pending = list(ids)
        for start in range(0, len(pending), 500):
            found = app.broker.fetch_results(pending[start : start + 500])
            if any(
                found.get(i) is None or found[i].state not in states.FINAL_STATES
                for i in pending[start : start + 500]
            ):
                return False
        return True

    wait(done, timeout, f"a final result for each of {len(ids)} tasks", interval=0.2)
