"""Many hosts for real: workers in their own network namespaces reach Redis over veth
links, share one queue, and survive a network partition longer than their lease.

::

    root namespace: redis-server on 127.0.0.1 and 10.231.X.1, 10.231.Y.1; the client
         │ veth 10.231.X.0/24             │ veth 10.231.Y.0/24
    namespace 1: worker host0         namespace 2: worker host1 (or a worker on the host)

Each worker's tasks see their own ``WORKER_NAME``, so a result says where it ran.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

import faults

LEASE_S = 2.0


@pytest.mark.timeout(60)
def test_workers_on_two_hosts_share_one_queue_over_their_own_links(
    workspace, namespaces, start_redis, prefix
):
    hosts = [namespaces(), namespaces()]
    server = start_redis(bind=["127.0.0.1", *(h.host_ip for h in hosts)])
    workspace.use_broker(server.url_for(prefix=prefix))
    workspace.write_redis_tasks()
    tasks = workspace.import_tasks()
    for i, host in enumerate(hosts):
        broker = server.url_for(host.host_ip, prefix=prefix)
        workspace.start_named_worker(f"host{i}", namespace=host, broker=broker)

    results = [tasks.square_by.delay(x) for x in range(200)]
    values = [r.get(timeout=30) for r in results]

    assert [square for square, _ in values] == [x * x for x in range(200)]
    done_by = Counter(name for _, name in values)
    print(f"\ntasks done per host: {dict(done_by)}")
    assert set(done_by) == {"host0", "host1"}
    admin = server.client()
    try:
        peers = {c["addr"].rsplit(":", 1)[0] for c in admin.client_list()}
    finally:
        admin.close()
    assert {h.ns_ip for h in hosts} <= peers  # the workers came over the veth links


def _runs(log: str) -> list[tuple[int, str, float]]:
    """(task argument, worker name, start time) of every execution so far."""
    found = []
    for e in faults.executions(log):
        x, name = e.tag.split(":")
        found.append((int(x), name, e.at))
    return found


@pytest.mark.timeout(60)
def test_a_worker_cut_off_past_its_lease_loses_its_task_to_another_and_resumes_after(
    workspace, namespaces, start_redis, prefix
):
    host_a = namespaces()
    server = start_redis(bind=["127.0.0.1", host_a.host_ip])
    workspace.use_broker(server.url_for(prefix=prefix))
    workspace.write_redis_tasks(settings=f"lease_s={LEASE_S}")
    tasks = workspace.import_tasks()
    log = workspace.file("executions.log")
    a = workspace.start_named_worker(
        "A", namespace=host_a, broker=server.url_for(host_a.host_ip, prefix=prefix)
    )
    b = workspace.start_named_worker("B")  # on the host, over 127.0.0.1
    results = {x: tasks.slow_square_by.delay(log, x, 1.0) for x in range(6)}

    def a_running() -> tuple[int, float] | None:
        return next(((x, at) for x, name, at in _runs(log) if name == "A"), None)

    in_flight, a_started = workspace.wait_until(a_running, 10, "worker A to start a task")
    host_a.cut()
    cut_at = time.time()
    assert cut_at - a_started < 0.5  # A is running it, holding its lease

    def b_took_it_over() -> float | None:
        return next((at for x, name, at in _runs(log) if x == in_flight and name == "B"), None)

    b_started = workspace.wait_until(b_took_it_over, 10, "worker B to run A's task")
    assert b_started - cut_at >= LEASE_S / 2  # only once A's lease ran out
    time.sleep(max(0.0, cut_at + LEASE_S + 0.5 - time.time()))  # cut off past the lease
    host_a.restore()
    restored_at = time.time()

    values = {x: r.get(timeout=30) for x, r in results.items()}
    assert {x: square for x, (square, _) in values.items()} == {x: x * x for x in range(6)}
    stored = tasks.app.broker.fetch_results([r.id for r in results.values()])
    assert {s.state for s in stored.values()} == {"SUCCESS"}
    assert len(stored) == len(results)
    executions = Counter(x for x, _, _ in _runs(log))
    assert [x for x, n in executions.items() if n > 1] == [in_flight]  # A had one in flight
    assert executions[in_flight] == 2
    a.wait_for_log("stale lease, ack rejected", timeout=20)
    assert results[in_flight].id in a.log()
    print(
        f"\nA cut off {restored_at - cut_at:.1f}s; B took A's task over "
        f"{b_started - cut_at:.1f}s after the cut"
    )

    b.stop()
    later = [tasks.slow_square_by.delay(log, 100 + i, 0.05) for i in range(3)]
    assert [r.get(timeout=20) for r in later] == [[(100 + i) ** 2, "A"] for i in range(3)]
    assert a.process.poll() is None
    assert tasks.app.broker.stats() == {}
