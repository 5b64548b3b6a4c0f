"""Redis is killed (SIGKILL) mid-run and started again on the same port and directory:
nothing acknowledged is lost, and the workers consume again within 5 s of Redis answering.

::

    sender ──delay()──▶ private redis-server ◀── worker A (1 child)
                        appendonly yes          ◀── worker B (1 child)
                        appendfsync always
             kill -9 ─▶ ✕ … pause … ─▶ redis-server again (same --port, same --dir: the AOF)

Durability is chosen, not assumed: ``appendfsync always`` makes Redis write and fsync
the AOF before it replies, so "``delay()`` returned" and "the worker's ack returned"
mean "on disk". (With the default ``everysec``, a crash may lose the last second of
writes, acknowledged ones included.) The client rides the outage out (its
``reconnect_s`` is longer than the pause), so every ``delay()`` eventually returns; the
workers keep their default window (20 s), longer than every pause here.

Recovery is measured per worker: from the moment the restarted server answers a PING to
the first task that worker starts after it.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

import pytest
import redis_chaos
from ledger import tally
from redis_chaos import CHAOS_TASKS, Stream, acl, first_run_after, wait_all_final

from taskmill import states

workspace = redis_chaos.workspace
start_redis = redis_chaos.start_redis
prefix = redis_chaos.prefix
namespaces = redis_chaos.namespaces  # the workspace tears down before it

RECOVERY_S = 5.0
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
NAMES = ("A", "B")


@dataclass(frozen=True)
class Plan:
    restarts: int
    run_s: float  # tasks flow this long before each kill, and after the last restart
    down_s: tuple[float, ...]  # the pause before each restart (cycled)
    rate: float  # tasks sent per second
    task_s: float
    worker_reconnect_s: float | None = None  # None: the broker's default, 20 s


QUICK = Plan(restarts=1, run_s=3.0, down_s=(2.0,), rate=40, task_s=0.02)
#: the workers' window is 2 s, so the 3 s and 5 s outages also take their calls past it:
#: they fail with BrokerError and the workers' own loops carry on
FULL = Plan(
    restarts=5,
    run_s=6.0,
    down_s=(1.0, 3.0, 0.5, 2.0, 5.0),
    rate=40,
    task_s=0.02,
    worker_reconnect_s=2.0,
)


def run_restarts(workspace, start_redis, prefix, figures, plan: Plan, scenario: str) -> None:
    server = start_redis(*DURABLE)
    workspace.use_broker(server.url_for(prefix=prefix, reconnect_s=60))
    workspace.write_redis_tasks(settings="lease_s=10")
    workspace.write("tasks.py", (workspace.path / "tasks.py").read_text() + CHAOS_TASKS)
    tasks = workspace.import_tasks()
    window = {} if plan.worker_reconnect_s is None else {"reconnect_s": plan.worker_reconnect_s}
    worker_url = server.url_for(prefix=prefix, **window)
    workers = {name: workspace.start_named_worker(name, broker=worker_url) for name in NAMES}
    children = {name: w.children() for name, w in workers.items()}
    log = workspace.file("executions.log")

    recoveries: list[float] = []
    stored_before: set[str] = set()
    with Stream(tasks.work, log, plan.rate, plan.task_s) as stream:
        for i in range(plan.restarts):
            time.sleep(plan.run_s)
            stored_before |= _successes(tasks.app, list(stream.expected))
            server.kill()
            time.sleep(plan.down_s[i % len(plan.down_s)])
            server.start()  # the same port, the same --dir
            up_at = time.time()
            recoveries += _recovery(workspace, log, up_at)
        time.sleep(plan.run_s)
    expected = dict(stream.expected)
    wait_all_final(tasks.app, list(expected), 60, workspace.wait_until)

    t = tally(tasks.app, expected, log, stream.tags)
    worst = max(recoveries)
    figures.record(
        scenario,
        load=f"{t.sent:,} tasks at {plan.rate:.0f}/s, 2 workers x 1 child, AOF fsync always"
        + (
            ""
            if plan.worker_reconnect_s is None
            else f", worker reconnect window {plan.worker_reconnect_s:g} s"
        ),
        faults=f"{plan.restarts} x kill -9 of Redis, down "
        + ", ".join(f"{s:g}" for s in plan.down_s[: plan.restarts])
        + " s",
        tally=t,
        recovery=f"consuming again {statistics.median(recoveries):.2f} s (median), "
        f"{worst:.2f} s (worst) after Redis answered",
    )
    t.check(max_duplicates=0)
    assert stream.refused == 0  # the client rode every outage out
    assert stored_before <= _successes(tasks.app, list(stored_before))  # durable results
    assert worst <= RECOVERY_S, f"a worker consumed again only {worst:.2f}s after Redis answered"
    if plan.worker_reconnect_s is not None and max(plan.down_s) > plan.worker_reconnect_s:
        assert all("broker error" in w.log() for w in workers.values())  # past the window
    for name, worker in workers.items():
        assert worker.process.poll() is None
        assert worker.children() == children[name]  # the same child rode every outage out
    registered = workspace.wait_until(
        lambda: {json.loads(w)["pid"] for w in tasks.app.broker.workers()} or None,
        5,
        "the registry heartbeats",
    )
    assert registered == {w.pid for w in workers.values()}


def _successes(app, ids: list[str]) -> set[str]:
    found = {}
    for start in range(0, len(ids), 500):
        found.update(app.broker.fetch_results(ids[start : start + 500]))
    return {i for i, r in found.items() if r.state == states.SUCCESS}


def _recovery(workspace, log: str, up_at: float) -> list[float]:
    """Seconds from ``up_at`` until each worker started a task again."""

    def every_worker_ran() -> list[float] | None:
        firsts = [first_run_after(log, name, up_at) for name in NAMES]
        return None if None in firsts else [at - up_at for at in firsts if at is not None]

    return list(workspace.wait_until(every_worker_ran, 30, "both workers to run a task again"))


@pytest.mark.timeout(90)
def test_a_redis_crash_and_restart_loses_nothing_acknowledged(
    workspace, start_redis, prefix, figures
):
    run_restarts(workspace, start_redis, prefix, figures, QUICK, "Redis kill -9 + restart")


@pytest.mark.chaos
@pytest.mark.timeout(240)
def test_repeated_redis_crashes_over_a_longer_run_lose_nothing_acknowledged(
    workspace, start_redis, prefix, figures
):
    run_restarts(workspace, start_redis, prefix, figures, FULL, "Redis kill -9 + restart, repeated")


@pytest.mark.timeout(60)
def test_a_worker_limited_to_its_key_prefix_by_an_acl_runs_tasks(
    workspace, start_redis, prefix, figures
):
    """The least-privilege ACL (``tests/redis/test_redis_acl.py`` proves it is minimal)
    suffices for a worker's whole life; here it only carries a load, for the figures."""
    server = start_redis()
    url = acl.lock_down(server, prefix, acl.MINIMAL)
    workspace.use_broker(url)
    workspace.write_redis_tasks()
    workspace.write("tasks.py", (workspace.path / "tasks.py").read_text() + CHAOS_TASKS)
    tasks = workspace.import_tasks()
    workspace.start_named_worker("acl", concurrency=2)
    log = workspace.file("executions.log")
    sent = {tasks.work.delay(log, x, 0).id: x for x in range(500)}
    wait_all_final(tasks.app, list(sent), 30, workspace.wait_until)

    tags = {id: str(x) for id, x in sent.items()}
    t = tally(tasks.app, {id: x * x for id, x in sent.items()}, log, tags)
    figures.record(
        "Redis ACL user limited to its key prefix",
        load=f"{t.sent} tasks, 1 worker x 2 children",
        faults="none (least privilege: ~prefix:* and 33 commands)",
        tally=t,
    )
    t.check(max_duplicates=0)
