"""Dramatiq's benchmark actors: Redis broker, Results middleware on Redis."""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from _common import burn_cpu, mark_ready
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = os.environ["BENCH_REDIS_URL"]


class ReadyMarker(Middleware):
    """Drops a marker file once a worker process has booted."""

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        mark_ready()


broker = RedisBroker(url=URL)
backend = RedisBackend(url=URL)
broker.add_middleware(Results(backend=backend))
broker.add_middleware(ReadyMarker())
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop() -> None:
    return None


@dramatiq.actor(store_results=True, max_retries=0)
def burn(cpu_ms: float) -> float:
    return burn_cpu(cpu_ms)
