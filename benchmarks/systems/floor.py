"""The floor: a minimal hand-written JSON queue on redis-py (``tasks/bench_floor.py``).

Not a peer — it has none of a task queue's guarantees (a worker that dies loses the
message it took) — but the yardstick the Redis figures are read against: how fast one
LPUSH per message and 2 echo processes go on this machine, in the same run. Redis db 14.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import PEERS_REDIS_URL, System, WorkerSpec, flush_redis_db


class Floor(System):
    name = "redis-floor"
    distributions = ("redis",)
    task_module = "bench_floor"
    client = "hand-written: `LPUSH` a JSON message, `BRPOP` its result list (no guarantees)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self.tasks.client()
        return self._conn

    def env(self, spec: WorkerSpec) -> dict[str, str]:
        return {"BENCH_REDIS_URL": PEERS_REDIS_URL}

    def prepare(self) -> None:
        flush_redis_db(PEERS_REDIS_URL)

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        return [sys.executable, "bench_floor.py", str(spec.processes)]

    def is_ready(self, spec: WorkerSpec) -> bool:
        return self.ready_markers() >= spec.processes

    def send_noop(self) -> Any:
        return self.tasks.send(self.conn, "noop")

    def send_burn(self, cpu_ms: float) -> Any:
        return self.tasks.send(self.conn, "burn", cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        return self.tasks.wait(self.conn, handle, timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
