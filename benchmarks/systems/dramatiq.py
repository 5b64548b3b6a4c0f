"""Dramatiq: Redis broker, Results middleware on Redis (db 14)."""

from __future__ import annotations

from typing import Any

from .base import PEERS_REDIS_URL, System, WorkerSpec, bin_path, flush_redis_db


class Dramatiq(System):
    name = "dramatiq"
    distributions = ("dramatiq",)
    task_module = "bench_dramatiq"
    client = ("`noop.send()`, `message.get_result(block=True)` (Results middleware, "
              "RedisBackend); 8 threads per process, 1 for W3")

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        return {"BENCH_REDIS_URL": PEERS_REDIS_URL}

    def prepare(self) -> None:
        flush_redis_db(PEERS_REDIS_URL)

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        # Threads suit short I/O-ish tasks; CPU-bound tasks get one thread per process.
        threads = 1 if spec.profile == "cpu" else 8
        return [bin_path("dramatiq"), self.task_module,
                "--processes", str(spec.processes), "--threads", str(threads)]

    def is_ready(self, spec: WorkerSpec) -> bool:
        return self.ready_markers() >= spec.processes

    def send_noop(self) -> Any:
        return self.tasks.noop.send()

    def send_burn(self, cpu_ms: float) -> Any:
        return self.tasks.burn.send(cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        return handle.get_result(
            backend=self.tasks.backend, block=True, timeout=max(1, int(timeout * 1000))
        )

    def close(self) -> None:
        if self._tasks is not None:
            self._tasks.broker.close()
