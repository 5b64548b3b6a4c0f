"""Huey: RedisHuey (blocking reads, results notified) and SqliteHuey (embedded)."""

from __future__ import annotations

from typing import Any

from .base import PEERS_REDIS_URL, System, WorkerSpec, bin_path, flush_redis_db


class Huey(System):
    distributions = ("huey",)
    task_module = "bench_huey"
    client = "`noop()`, `result.get(blocking=True, timeout=)`"
    storage = ""

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        return {
            "BENCH_HUEY_STORAGE": self.storage,
            "BENCH_REDIS_URL": PEERS_REDIS_URL,
            "BENCH_SQLITE_PATH": str(self.workdir / "huey.db"),
        }

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        return [bin_path("huey_consumer"), f"{self.task_module}.huey",
                "-w", str(spec.processes), "-k", "process", "--quiet"]

    def is_ready(self, spec: WorkerSpec) -> bool:
        return self.ready_markers() >= spec.processes

    def send_noop(self) -> Any:
        return self.tasks.noop()

    def send_burn(self, cpu_ms: float) -> Any:
        return self.tasks.burn(cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        return handle.get(blocking=True, timeout=timeout)


class HueyRedis(Huey):
    name = "huey-redis"
    storage = "redis"
    client = ("`noop()`, `result.get(blocking=True, timeout=)`; "
              "`RedisHuey(blocking=True, notify_result=True)`")

    def prepare(self) -> None:
        flush_redis_db(PEERS_REDIS_URL)


class HueySQLite(Huey):
    name = "huey-sqlite"
    storage = "sqlite"
    client = ("`noop()`, `result.get(blocking=True, timeout=)` (polls from 50 ms); "
              "`SqliteHuey`, workers poll 1 ms doubling to 50 ms")

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        # SqliteHuey cannot block on a read, so its workers poll; the defaults (0.1 s
        # growing to 10 s) are tuned down to taskmill's own SQLite polling, 1 ms to 50 ms.
        return [*super().worker_argv(spec), "--delay", "0.001", "--max-delay", "0.05",
                "--backoff", "2"]
