"""Workers whose clocks are wrong by two minutes run delayed tasks on time: never early,
and at most 1 s late at the 99th percentile, measured on the Redis server's clock.

::

    client (true clock) ──countdown / eta──▶ redis-server: due = TIME + delay ◀── worker +120 s
                                                                         ◀── worker -120 s

What is skewed: each worker runs through a small wrapper that shifts ``time.time`` and
``time.time_ns`` by +120 s or -120 s before ``taskmill.cli.main()`` starts (so the
supervisor, its forked children and the tasks all see the shifted clock), with no
extra system package. ``time.monotonic``, ``datetime.now()`` and the kernel's clock are
left alone. Each task reads Redis ``TIME`` as it starts; its due time is the score Redis
gave its message in the ``delayed`` set, so lateness is measured on one clock, the
server's. A task's own ``time.time()`` in the execution log shows the skew was real.
"""

from __future__ import annotations

import statistics
import sys
import time

import pytest
import redis_chaos
from ledger import tally
from redis_chaos import CHAOS_TASKS, runs_by, wait_all_final

from integration.conftest import READY

workspace = redis_chaos.workspace
start_redis = redis_chaos.start_redis
prefix = redis_chaos.prefix
namespaces = redis_chaos.namespaces

SKEWS = {"ahead": 120.0, "behind": -120.0}
MAX_P99_LATE_S = 1.0

#: ``python -c SKEWED OFFSET worker ...``: taskmill's CLI on a clock OFFSET seconds off
SKEWED = """\
import sys, time
offset = float(sys.argv[1])
true_time, true_time_ns = time.time, time.time_ns
time.time = lambda: true_time() + offset
time.time_ns = lambda: true_time_ns() + int(offset * 1e9)
sys.argv = ["taskmill", *sys.argv[2:]]
from taskmill.cli import main
main()
"""

CLOCK_TASKS = """

@app.task
def stamp(log, x):
    at = app.broker.now()  # the Redis server's clock, as the task starts
    faults.record(log, x)
    faults.record(f"{log}.{os.environ.get('WORKER_NAME', '')}", f"{x}:{at:.6f}")
    # Held 10 ms, so the children of one worker cannot take every task as it comes due
    # (a no-op task moves in batches): both skewed workers get their share.
    time.sleep(0.01)
    return x * x
"""


def start_skewed_worker(workspace, name: str, offset: float):
    command = [sys.executable, "-c", SKEWED, str(offset), "worker", "-A", "tasks"]
    command += ["-c", "2", "--grace", "3", "--loglevel", "info"]
    worker = workspace.spawn(command, env={**workspace.env, "WORKER_NAME": name})
    worker.wait_for_log(READY)
    worker.wait_for_children(2)
    return worker


def run_skewed(workspace, start_redis, prefix, figures, count: int, spread_s: float, scenario):
    server = start_redis()
    workspace.use_broker(server.url_for(prefix=prefix))
    workspace.write_redis_tasks()
    workspace.write(
        "tasks.py", (workspace.path / "tasks.py").read_text() + CHAOS_TASKS + CLOCK_TASKS
    )
    tasks = workspace.import_tasks()
    log = workspace.file("executions.log")
    for name, offset in SKEWS.items():
        start_skewed_worker(workspace, name, offset)

    delayed = f"{prefix}:{{{tasks.stamp.options.queue}}}:delayed"
    admin = server.client()
    due: dict[int, float] = {}
    sent: dict[str, int] = {}
    try:
        for first in range(0, count, 100):
            batch = {}
            for x in range(first, min(count, first + 100)):
                delay = 2.0 + spread_s * x / count
                if x % 2:
                    result = tasks.stamp.apply_async((log, x), countdown=delay)
                else:
                    result = tasks.stamp.apply_async((log, x), eta=time.time() + delay)
                batch[result.id] = x
            scores = admin.zmscore(delayed, list(batch))
            assert None not in scores, "a task came due before its due time was read"
            due.update({x: float(s) for x, s in zip(batch.values(), scores, strict=True)})
            sent.update(batch)
    finally:
        admin.close()
    wait_all_final(tasks.app, list(sent), 60, workspace.wait_until)

    started: dict[int, float] = {}
    skew_seen = {}
    for name, offset in SKEWS.items():
        runs = runs_by(log, name)
        for e in runs:
            x, at = e.tag.split(":")
            started.setdefault(int(x), float(at))
        skew_seen[name] = statistics.median(e.at - float(e.tag.split(":")[1]) for e in runs)
        assert abs(skew_seen[name] - offset) < 1.0, f"{name}'s clock is not skewed"
    late = sorted(started[x] - due[x] for x in started)
    p50, p99 = late[len(late) // 2], late[int(len(late) * 0.99) - 1]
    t = tally(
        tasks.app, {id: x * x for id, x in sent.items()}, log, {i: str(x) for i, x in sent.items()}
    )
    figures.record(
        scenario,
        load=f"{count:,} tasks, countdowns and ETAs 2-{2 + spread_s:g} s ahead; "
        "2 workers x 2 children",
        faults="worker clocks +120 s and -120 s (time.time shifted)",
        tally=t,
        recovery=f"lateness on Redis TIME: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {late[-1] * 1000:.0f} ms; early: {sum(1 for s in late if s < 0)}",
    )
    t.check(max_duplicates=0)
    assert late[0] >= 0, f"a task ran {-late[0]:.3f}s early"
    assert p99 <= MAX_P99_LATE_S, f"p99 lateness {p99:.3f}s"


@pytest.mark.timeout(60)
def test_workers_with_skewed_clocks_never_run_delayed_tasks_early_nor_late(
    workspace, start_redis, prefix, figures
):
    run_skewed(workspace, start_redis, prefix, figures, 200, 2.0, "worker clocks skewed ±120 s")


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_a_thousand_delayed_tasks_on_workers_with_skewed_clocks_run_on_time(
    workspace, start_redis, prefix, figures
):
    run_skewed(
        workspace,
        start_redis,
        prefix,
        figures,
        1000,
        4.0,
        "worker clocks skewed ±120 s, 1,000 tasks",
    )
