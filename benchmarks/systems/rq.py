"""RQ: ``rq worker-pool`` (a forked work horse per job, RQ's default), Redis db 14."""

from __future__ import annotations

import math
from typing import Any

from .base import PEERS_REDIS_URL, System, WorkerSpec, bin_path, flush_redis_db

QUEUE = "bench"


class RQ(System):
    name = "rq"
    distributions = ("rq",)
    task_module = "bench_rq"
    client = ("`queue.enqueue(noop)`, `job.latest_result(timeout=)` (a blocking XREAD "
              "on the job's result stream)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: Any = None

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from redis import Redis
            from rq import Queue

            self._queue = Queue(QUEUE, connection=Redis.from_url(PEERS_REDIS_URL))
        return self._queue

    def prepare(self) -> None:
        flush_redis_db(PEERS_REDIS_URL)

    def worker_argv(self, spec: WorkerSpec) -> list[str]:
        return [bin_path("rq"), "worker-pool", "-n", str(spec.processes),
                "-u", PEERS_REDIS_URL, "-l", "WARNING", QUEUE]

    def is_ready(self, spec: WorkerSpec) -> bool:
        from rq import Worker

        return len(Worker.all(queue=self.queue)) >= spec.processes

    def send_noop(self) -> Any:
        return self.queue.enqueue(self.tasks.noop)

    def send_burn(self, cpu_ms: float) -> Any:
        return self.queue.enqueue(self.tasks.burn, cpu_ms)

    def wait(self, handle: Any, timeout: float) -> Any:
        from rq.results import Result

        # RQ's own blocking wait (XREAD on the job's result stream), not a polling loop.
        result = handle.latest_result(timeout=max(1, math.ceil(timeout)))
        if result is None:
            raise TimeoutError(f"job {handle.id}: no result within {timeout:.1f}s")
        if result.type != Result.Type.SUCCESSFUL:
            raise RuntimeError(f"job {handle.id} failed: {result.exc_string}")
        return result.return_value

    def close(self) -> None:
        if self._queue is not None:
            self._queue.connection.close()
