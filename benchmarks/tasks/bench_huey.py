"""Huey's benchmark tasks: RedisHuey (blocking reads, notified results) or SqliteHuey.

``store_none=True``: Huey keeps no result for a task that returns None unless told to, and
the no-op task returns None like everyone else's.
"""

from __future__ import annotations

import os

from _common import burn_cpu, mark_ready
from huey import RedisHuey, SqliteHuey

if os.environ["BENCH_HUEY_STORAGE"] == "redis":
    huey = RedisHuey(
        "bench", url=os.environ["BENCH_REDIS_URL"], blocking=True, notify_result=True,
        store_none=True,
    )
else:
    huey = SqliteHuey("bench", filename=os.environ["BENCH_SQLITE_PATH"], store_none=True)


@huey.task()
def noop() -> None:
    return None


@huey.task()
def burn(cpu_ms: float) -> float:
    return burn_cpu(cpu_ms)


@huey.on_startup()
def _ready() -> None:
    mark_ready()
