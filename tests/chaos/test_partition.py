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
duplicates. Those 5 s are the margin for A's calls sent during the cut to get through
once it ends. Here they do within about 0.5 s (A's kernel sees its packets dropped at
its own link and keeps probing), but where a router drops them silently TCP doubles its
resend interval each time, so after a cut of T seconds the resend may come up to about T
later; hence a lease of at least three times the longest cut that must cost nothing.

A 45 s cut outlasts the lease: B takes A's in-flight tasks over (once each), and A's own
acknowledgement, sent when the link returns, is refused as stale, so each task keeps
exactly one recorded result, B's.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import pytest
import redis_chaos
from ledger import tally
from redis_chaos import CHAOS_TASKS, Stream, first_run_after, runs_by, wait_all_final

from taskmill import BrokerError
from taskmill.brokers import open_broker

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


#: SIGTERM → exit while cut off: seen within one broker call, the grace period, then
#: each of the supervisor's bounded calls (settling 2 children, the registry) giving up
STOP_WITHIN_S = 3.0 + 10.0


@pytest.mark.timeout(90)
def test_a_worker_cut_off_from_redis_still_stops_within_its_grace_period(
    workspace, namespaces, start_redis, prefix, figures
):
    """Its supervisor must not hang on a dead socket: it notices the signal, drains,
    kills the children after the grace period and leaves; another worker then runs what
    the stopped one held, once its 5 s lease ran out."""
    host_a = namespaces()
    server = start_redis(bind=["127.0.0.1", host_a.host_ip])
    workspace.use_broker(server.url_for(prefix=prefix))
    workspace.write_redis_tasks(settings="lease_s=5")
    workspace.write("tasks.py", (workspace.path / "tasks.py").read_text() + CHAOS_TASKS)
    tasks = workspace.import_tasks()
    log = workspace.file("executions.log")
    a = workspace.start_named_worker(
        "A", namespace=host_a, broker=server.url_for(host_a.host_ip, prefix=prefix), concurrency=2
    )
    workspace.start_named_worker("B", concurrency=2)
    with Stream(tasks.work_by, log, RATE, TASK_S) as stream:
        time.sleep(1.5)
        seen = len(runs_by(log, "A"))
        workspace.wait_until(lambda: len(runs_by(log, "A")) > seen, 10, "A to start a task")
        host_a.cut()
        cut_at = time.time()
        time.sleep(3.0)
        a.signal()
        stop_at = time.monotonic()
        a.wait(60)
        stopped = time.monotonic() - stop_at
        time.sleep(1.0)
    host_a.restore()
    sent = dict(stream.sent)
    wait_all_final(tasks.app, list(sent), 60, workspace.wait_until)

    in_flight = {int(e.tag) for e in runs_by(log, "A") if cut_at - TASK_S - 0.3 < e.at < cut_at}
    expected = {id: [x * x, "B" if _ran(log, "B", x) else "A"] for id, x in sent.items()}
    t = tally(tasks.app, expected, log, {id: str(x) for id, x in sent.items()})
    figures.record(
        "worker cut off, then stopped (SIGTERM)",
        load=f"{t.sent} tasks of {TASK_S:g} s at {RATE:g}/s; A and B x 2 children; lease 5 s",
        faults=f"A's link down, SIGTERM 3 s later ({len(in_flight)} in flight on A)",
        tally=t,
        recovery=f"A exited {stopped:.1f} s after SIGTERM (grace 3 s)",
    )
    assert stopped <= STOP_WITHIN_S, f"the cut-off worker took {stopped:.1f}s to stop"
    t.check(max_duplicates=len(in_flight))
    assert "grace period of 3s is over: killing children" in a.log()


def _ran(log: str, name: str, x: int) -> bool:
    return any(int(e.tag) == x for e in runs_by(log, name))


@pytest.mark.timeout(30)
def test_a_call_to_a_silent_redis_gives_up_within_its_window_and_one_socket_timeout(
    start_redis, prefix
):
    """A paused server (SIGSTOP) keeps its sockets and answers nothing, as a silent
    partition does. A call gives up after the reconnect window plus at most one socket
    timeout (no hidden retries inside it); a supervisor's broker, limited to 0.5 s a
    call, within about that."""
    server = start_redis()
    bounded = open_broker(server.url_for(prefix=prefix, socket_timeout=1, reconnect_s=1))
    supervisor_side = open_broker(server.url_for(prefix=prefix))
    supervisor_side.limit_call_time(0.5)
    try:
        bounded.now(), supervisor_side.now()  # connected before the silence
        server.pause()
        for broker, within in ((bounded, 1 + 1 + 0.5), (supervisor_side, 0.5 + 0.5 + 0.5)):
            started = time.monotonic()
            with pytest.raises(BrokerError, match="unreachable"):
                broker.register_worker("w", b"{}", 10)
            took = time.monotonic() - started
            assert took < within, f"gave up only after {took:.2f}s"
        server.resume()
        assert abs(supervisor_side.now() - bounded.now()) < 1
    finally:
        server.resume()
        bounded.close()
        supervisor_side.close()
