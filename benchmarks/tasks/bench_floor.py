"""The floor: a minimal hand-written JSON queue on redis-py, as fast as a queue can be
with nothing a task queue is for. No leases, no retries, no acknowledgement: a message
a worker takes and dies with is gone. Not a product — a yardstick for the others.

Client: ``LPUSH floor:q <json>``, then ``BRPOP floor:r:<id>``. Worker: ``N`` forked
processes, each looping ``BRPOP floor:q`` → run → ``LPUSH floor:r:<id> <json>``.

    python bench_floor.py N     # the worker command
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from typing import Any

import redis
from _common import burn_cpu, mark_ready

QUEUE = "floor:q"
TASKS = {"noop": lambda: None, "burn": burn_cpu}


def client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def send(conn: redis.Redis, task: str, *args: Any) -> str:
    id = uuid.uuid4().hex
    conn.lpush(QUEUE, json.dumps({"id": id, "task": task, "args": args}))
    return id


def wait(conn: redis.Redis, id: str, timeout: float) -> Any:
    popped = conn.brpop([f"floor:r:{id}"], timeout=max(timeout, 0.01))
    if popped is None:
        raise TimeoutError(f"task {id}: no result within {timeout:.1f}s")
    return json.loads(popped[1])["value"]


def serve() -> None:
    conn = client()
    mark_ready()
    while True:
        _, body = conn.brpop([QUEUE])
        message = json.loads(body)
        value = TASKS[message["task"]](*message["args"])
        conn.lpush(f"floor:r:{message['id']}", json.dumps({"value": value}))


def main() -> None:
    children = []
    for _ in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            serve()
            os._exit(0)
        children.append(pid)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
