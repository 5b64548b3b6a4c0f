"""taskmill itself, on its embedded SQLite broker and on Redis (db 13)."""

from __future__ import annotations

import json
import sys
from typing import Any

from .base import System, Unavailable, WorkerSpec, flush_redis_db, version_of

REDIS_URL = "redis://127.0.0.1:6379/13"


class Taskmill(System):
    distributions = ("taskmill",)
    task_module = "bench_taskmill"
    batch_send = True
    client = "`noop.delay()`, `result.get(timeout=)`"

    def broker_url(self) -> str:
        raise NotImplementedError

    def check(self) -> None:
        from taskmill.brokers import open_broker
        from taskmill.errors import TaskmillError

        try:
            open_broker(self.broker_url()).close()
        except TaskmillError as exc:
            raise Unavailable(str(exc)) from None

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        return {"BENCH_TASKMILL_BROKER": self.broker_url()}

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        return [sys.executable, "-m", "taskmill", "worker", "-A", self.task_module,
                "-c", str(spec.processes), "--loglevel", "warning"]

    def is_ready(self, spec: WorkerSpec) -> bool:
        # The "ready:" line is logged at info level, so at --loglevel warning the worker
        # registry (which the supervisor writes right after forking its children) tells.
        assert self.group is not None
        if "ready:" in self.group.log_text():
            return True
        for raw in self.tasks.app.broker.workers():
            info = json.loads(raw)
            if info.get("pid") == self.group.proc.pid:
                return len(info.get("children", [])) >= spec.processes
        return False

    def send_noop(self) -> Any:
        return self.tasks.noop.delay()

    def send_burn(self, cpu_ms: float) -> Any:
        return self.tasks.burn.delay(cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout)

    # -- W1m: W1's calls sent with one ``Task.map`` instead of N ``delay()`` calls ----------

    def check_batch_send(self) -> None:
        return None

    def send_map(self, n: int) -> Any:
        return self.tasks.noop_item.map(range(n))

    def wait_batch(self, batch: Any, timeout: float) -> list[Any]:
        return list(batch.get(timeout=timeout))

    def close(self) -> None:
        if self._tasks is not None:
            self._tasks.app.close()

    def versions(self) -> dict[str, str]:
        return {"taskmill": version_of("taskmill")}


class TaskmillSQLite(Taskmill):
    name = "taskmill-sqlite"

    def broker_url(self) -> str:
        return f"sqlite:///{self.workdir / 'bench.db'}"


class TaskmillRedis(Taskmill):
    name = "taskmill-redis"

    def broker_url(self) -> str:
        return REDIS_URL

    def prepare(self) -> None:
        flush_redis_db(REDIS_URL)
