"""A worker is cut off from Redis mid-task (its link silently drops every packet) while
another keeps working: nothing is lost; a cut shorter than the lease costs no duplicate,
a longer one at most the tasks the cut-off worker had in flight, and that worker's late
acknowledgements are rejected.

::

    root namespace: redis-server (127.0.0.1, 10.231.X.1) ◀── worker B (2 children)
            │ veth 10.231.X.0/24  ✕ ip link set <host end> down, for 5 s or 45 s
    namespace: worker A (2 children), mid-task when the link goes down

The lease is 15 s, renewed every 5 s: when the cut starts, A's leases have at least 10 s
left, so a 5 s cut leaves A at least 5 s after the link returns to renew them, or to
acknowledge the task it finished meanwhile, before anyone else may take them: no
duplicates. A 45 s cut outlasts the lease: B takes A's in-flight tasks over (once each),
and A's own acknowledgement, sent when the link returns, is refused as stale, so each
task keeps exactly one recorded result, B's.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import pytest
import redis_chaos
from ledger import tally
from redis_chaos import CHAOS_TASKS, Stream, first_run_after, runs_by, wait_all_final

workspace = redis_chaos.workspace
start_redis = redis_chaos.start_redis
prefix = redis_chaos.prefix
namespaces = redis_chaos.namespaces

LEASE_S = 15.0
TASK_S = 0.5
RATE = 4.0  # tasks per second: B's two children alone keep up with it
STALE = "stale lease, ack rejected"


@dataclass(frozen=True)
class Cut:
    before_s: float  # tasks flow this long before the cut
    cut_s: float
    after_s: float  # and this long after the link returns


QUICK = Cut(before_s=2.0, cut_s=5.0, after_s=3.0)
LONG = Cut(before_s=4.0, cut_s=45.0, after_s=10.0)


def run_cut(workspace, namespaces, start_redis, prefix, figures, plan: Cut, scenario: str):
    host_a = namespaces()
    server = start_redis(bind=["127.0.0.1", host_a.host_ip])
    workspace.use_broker(server.url_for(prefix=prefix))
    workspace.write_redis_tasks(settings=f"lease_s={LEASE_S}")
    workspace.write("tasks.py", (workspace.path / "tasks.py").read_text() + CHAOS_TASKS)
    tasks = workspace.import_tasks()
    log = workspace.file("executions.log")
    a = workspace.start_named_worker(
        "A",
        namespace=host_a,
        broker=server.url_for(host_a.host_ip, prefix=prefix),
        concurrency=2,
    )
    b = workspace.start_named_worker("B", concurrency=2)

    with Stream(tasks.work_by, log, RATE, TASK_S) as stream:
        time.sleep(plan.before_s)
        seen = len(runs_by(log, "A"))
        workspace.wait_until(lambda: len(runs_by(log, "A")) > seen, 10, "A to start a task")
        host_a.cut()
        cut_at = time.time()
        time.sleep(plan.cut_s)
        host_a.restore()
        restored_at = time.time()
        resumed = workspace.wait_until(
            lambda: first_run_after(log, "A", restored_at), 60, "A to run a task again"
        )
        time.sleep(plan.after_s)
    sent = dict(stream.sent)
    wait_all_final(tasks.app, list(sent), 90, workspace.wait_until)

    # A's tasks that were running or finished-but-unacknowledged when the link went down
    in_flight = {int(e.tag) for e in runs_by(log, "A") if cut_at - TASK_S - 0.3 < e.at < cut_at}
    ran_by = {name: Counter(int(e.tag) for e in runs_by(log, name)) for name in ("A", "B")}
    # the recorded result must be B's wherever B ran the task: A's late ack was stale
    expected = {id: [x * x, "B" if ran_by["B"][x] else "A"] for id, x in sent.items()}
    t = tally(tasks.app, expected, log, {id: str(x) for id, x in sent.items()})
    taken_over = [x for x in in_flight if ran_by["B"][x]]
    figures.record(
        scenario,
        load=f"{t.sent} tasks of {TASK_S:g} s at {RATE:g}/s; A and B x 2 children; "
        f"lease {LEASE_S:g} s",
        faults=f"A's link down {plan.cut_s:g} s, mid-task ({len(in_flight)} in flight on A)",
        tally=t,
        recovery=f"A running tasks again {resumed - restored_at:.2f} s after the link returned",
    )
    a_log = a.log()
    return t, in_flight, taken_over, a_log, (a, b)


@pytest.mark.timeout(90)
def test_a_worker_cut_off_for_less_than_its_lease_loses_nothing_and_duplicates_nothing(
    workspace, namespaces, start_redis, prefix, figures
):
    t, in_flight, taken_over, a_log, _ = run_cut(
        workspace, namespaces, start_redis, prefix, figures, QUICK, "worker cut off 5 s"
    )
    assert in_flight  # the cut came mid-task
    t.check(max_duplicates=0)
    assert taken_over == []
    assert STALE not in a_log


@pytest.mark.chaos
@pytest.mark.timeout(240)
def test_a_worker_cut_off_past_its_lease_loses_nothing_and_its_late_acks_are_rejected(
    workspace, namespaces, start_redis, prefix, figures
):
    t, in_flight, taken_over, a_log, _ = run_cut(
        workspace, namespaces, start_redis, prefix, figures, LONG, "worker cut off 45 s"
    )
    assert in_flight
    t.check(max_duplicates=len(in_flight))
    assert taken_over  # B ran A's task once its lease ran out...
    assert t.duplicates == len(taken_over)  # ...and nothing else ran twice
    assert STALE in a_log
