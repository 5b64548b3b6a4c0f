"""Celery: prefork pool, Redis broker and Redis result backend (db 14)."""

from __future__ import annotations

from typing import Any

from .base import PEERS_REDIS_URL, System, WorkerSpec, bin_path, flush_redis_db


class Celery(System):
    name = "celery"
    distributions = ("celery", "kombu")
    task_module = "bench_celery"
    client = ("`noop.delay()`, `result.get(timeout=)` (Redis result backend); "
              "`worker_prefetch_multiplier` 128, 1 with `-O fair` for W3")

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        return {"BENCH_REDIS_URL": PEERS_REDIS_URL}

    def prepare(self) -> None:
        flush_redis_db(PEERS_REDIS_URL)

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        argv = [bin_path("celery"), "-A", self.task_module, "worker",
                "-c", str(spec.processes), "--pool", "prefork", "--loglevel", "WARNING",
                # the usual production switches for a worker that needs no cluster chatter
                "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if spec.profile == "cpu":
            argv += ["-O", "fair"]
        return argv

    def is_ready(self, spec: WorkerSpec) -> bool:
        return self.ready_markers() >= 1

    def send_noop(self) -> Any:
        return self.tasks.noop.delay()

    def send_burn(self, cpu_ms: float) -> Any:
        return self.tasks.burn.delay(cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        return handle.get(timeout=timeout)

    def close(self) -> None:
        if self._tasks is not None:
            self._tasks.app.close()
