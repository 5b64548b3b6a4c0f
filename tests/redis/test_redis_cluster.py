"""Redis Cluster for real: three masters, queues on different nodes, real workers.

The contract suite runs against the same cluster (the ``cluster`` store); these tests show
what is particular to it: where the keys land, reserve over queues of different nodes,
and workers — killed mid-task or dead between storing a result and acknowledging it —
still leaving exactly one result per task.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

import faults
from redis_cluster import PrivateCluster, delete_cluster_prefix
from taskmill.brokers import open_broker
from taskmill.brokers.base import Broker, Outgoing, ResultRecord
from taskmill.errors import ConfigurationError
from taskmill.result import value_record


@pytest.fixture
def cluster_url(redis_cluster: PrivateCluster, prefix: str):
    yield f"{redis_cluster.url}?prefix={prefix}"
    delete_cluster_prefix(redis_cluster, prefix)


@pytest.fixture
def broker(cluster_url: str):
    opened = open_broker(cluster_url)
    yield opened
    opened.close()


def node_of(cluster: PrivateCluster, key: str) -> int:
    """The port of the master that serves ``key``'s slot, by CLUSTER KEYSLOT and SLOTS."""
    client = cluster.nodes[0].client()
    try:
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(master[1])
    finally:
        client.close()
    raise AssertionError(f"no master serves slot {slot}")


def queues_on_every_master(cluster: PrivateCluster, prefix: str) -> list[str]:
    """One queue name per master: q0, q1, ... until each master has one."""
    chosen: dict[int, str] = {}
    for i in range(1000):
        port = node_of(cluster, f"{prefix}:{{q{i}}}:ready")
        chosen.setdefault(port, f"q{i}")
        if len(chosen) == len(cluster.nodes):
            return [chosen[n.port] for n in cluster.nodes]
    raise AssertionError("no queue names spread over every master")


def msg(id: str, queue: str, priority: int = 0) -> Outgoing:
    return Outgoing(id, queue, id.encode(), priority)


# -- the URL ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_cluster_url_names_any_nodes_and_refuses_a_database(redis_cluster, prefix):
    first = redis_cluster.nodes[0].port
    one_node = open_broker(f"redis+cluster://127.0.0.1:{first}/?prefix={prefix}")
    try:
        one_node.enqueue([msg("a", "q")])
        assert [d.id for d in one_node.reserve(["q"], 1, lease_s=30, wait_s=0)] == ["a"]
    finally:
        one_node.close()
        delete_cluster_prefix(redis_cluster, prefix)
    with pytest.raises(ConfigurationError, match="no databases"):
        open_broker(f"redis+cluster://127.0.0.1:{first}/3")
    with pytest.raises(ConfigurationError, match="unknown parameters"):
        open_broker(f"redis+cluster://127.0.0.1:{first}/?db=3")


# -- where keys land ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_queues_land_on_different_masters_and_each_queue_on_one(redis_cluster, broker, prefix):
    queues = queues_on_every_master(redis_cluster, prefix)
    broker.enqueue([msg(f"m-{q}", q) for q in queues])

    for queue, node in zip(queues, redis_cluster.nodes, strict=True):
        client = node.client()
        try:
            here = {k.decode() for k in client.scan_iter(match=f"{prefix}:{{{queue}}}:*")}
            others = [
                k
                for other in queues
                if other != queue
                for k in client.scan_iter(match=f"{prefix}:{{{other}}}:*")
            ]
        finally:
            client.close()
        assert {f"{prefix}:{{{queue}}}:{kind}" for kind in ("ready", "msg", "meta")} <= here
        assert others == []  # the other queues live on the other masters
    assert len({node_of(redis_cluster, f"{prefix}:{{{q}}}:ready") for q in queues}) == 3


@pytest.mark.timeout(30)
def test_a_result_lives_in_the_slot_of_its_id(redis_cluster, broker, prefix):
    (queue,) = queues_on_every_master(redis_cluster, prefix)[:1]
    broker.enqueue([msg("task-1", queue)])
    (delivery,) = broker.reserve([queue], 1, lease_s=30, wait_s=0)

    assert broker.ack([delivery], [ResultRecord("task-1", "SUCCESS", b"42", 60)]) == [True]

    key = f"{prefix}:r:{{task-1}}"
    node = next(n for n in redis_cluster.nodes if n.port == node_of(redis_cluster, key))
    client = node.client()
    try:
        assert client.get(key) == b"SUCCESS\n42"
    finally:
        client.close()
    assert broker.stats() == {}


# -- reserve over queues of different masters -------------------------------------------------


@pytest.mark.timeout(30)
def test_reserve_over_several_queues_takes_them_in_the_order_given_then_by_priority(
    redis_cluster, broker, prefix
):
    one, two, _ = queues_on_every_master(redis_cluster, prefix)
    broker.enqueue([msg("a", one), msg("b", two, priority=1)])
    broker.enqueue([msg("c", one, priority=1), msg("d", two)])

    taken = broker.reserve([one, two], 3, lease_s=30, wait_s=0)
    assert [d.id for d in taken] == ["c", "a", "b"]
    assert [d.queue for d in taken] == [one, one, two]
    assert [d.id for d in broker.reserve([two, one], 10, lease_s=30, wait_s=0)] == ["d"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("last", [False, True])
def test_a_reserve_blocked_on_several_queues_wakes_for_a_message_on_any_of_them(
    redis_cluster, broker, cluster_url, prefix, last
):
    queues = queues_on_every_master(redis_cluster, prefix)
    target = queues[-1] if last else queues[0]
    producer = open_broker(cluster_url)
    timer = threading.Timer(0.3, producer.enqueue, [[msg("wake", target)]])
    started = time.monotonic()
    timer.start()
    try:
        taken = broker.reserve(queues, 5, lease_s=30, wait_s=10)
    finally:
        timer.join()
        producer.close()

    assert [(d.id, d.queue) for d in taken] == [("wake", target)]
    assert time.monotonic() - started < 2  # woken, not timed out (10 s) nor polled late


@pytest.mark.timeout(30)
def test_a_released_message_wakes_a_reserver_blocked_on_several_queues(
    redis_cluster, broker, cluster_url, prefix
):
    one, two, three = queues_on_every_master(redis_cluster, prefix)
    holder = open_broker(cluster_url)
    try:
        holder.enqueue([msg("held", two)])
        (held,) = holder.reserve([two], 1, lease_s=30, wait_s=0)
        timer = threading.Timer(0.3, holder.release, [[held]])
        started = time.monotonic()
        timer.start()
        try:
            taken = broker.reserve([one, two, three], 5, lease_s=30, wait_s=10)
        finally:
            timer.join()
    finally:
        holder.close()

    assert [d.id for d in taken] == ["held"]
    assert time.monotonic() - started < 2


@pytest.mark.timeout(30)
def test_many_threads_blocked_on_several_queues_share_out_messages_once_each(
    redis_cluster, broker, cluster_url, prefix
):
    queues = queues_on_every_master(redis_cluster, prefix)
    got: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            taken = broker.reserve(queues, 2, lease_s=30, wait_s=1.5)
            if not taken:
                return
            with lock:
                got.extend(d.id for d in taken)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    producer = open_broker(cluster_url)
    try:
        for i in range(60):
            producer.enqueue([msg(f"m{i}", queues[i % 3])])
    finally:
        producer.close()
    for t in threads:
        t.join(timeout=20)

    assert sorted(got) == sorted(f"m{i}" for i in range(60))


# -- workers on the cluster -------------------------------------------------------------------


def _cluster_workspace(workspace, cluster_url: str):
    workspace.use_broker(cluster_url)
    workspace.write_redis_tasks()
    return workspace.import_tasks()


@pytest.mark.timeout(60)
def test_workers_on_queues_of_every_master_return_every_result_and_status_shows_them(
    workspace, redis_cluster, cluster_url, prefix
):
    tasks = _cluster_workspace(workspace, cluster_url)
    queues = queues_on_every_master(redis_cluster, prefix)
    worker = workspace.start_named_worker("w", "-Q", ",".join(queues), concurrency=2)

    results = [tasks.square_by.apply_async((x,), queue=queues[x % 3]) for x in range(30)]
    assert [r.get(timeout=20)[0] for r in results] == [x * x for x in range(30)]
    assert {r.get(timeout=1)[1] for r in results} == {"w"}

    shown = workspace.run_cli("status", "-A", "tasks", "--json")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert [w["pid"] for w in status["workers"]] == [worker.pid]
    plain = workspace.run_cli("status", "-A", "tasks")
    assert plain.returncode == 0, plain.stderr
    assert "redis+cluster://" in plain.stdout
    assert tasks.app.broker.stats() == {}


@pytest.mark.timeout(60)
def test_a_child_killed_mid_task_on_a_cluster_still_leaves_one_result_per_task(
    workspace, redis_cluster, cluster_url, prefix
):
    tasks = _cluster_workspace(workspace, cluster_url)
    queues = queues_on_every_master(redis_cluster, prefix)
    worker = workspace.start_named_worker("w", "-Q", ",".join(queues), concurrency=2)
    log = workspace.file("executions.log")

    victim = tasks.logged_sleep.apply_async((log, "victim", 2.0), queue=queues[2])
    others = [tasks.square.apply_async((x,), queue=queues[x % 3]) for x in range(20)]
    (first,) = workspace.wait_until(
        lambda: [r for r in faults.executions(log) if r.tag == "victim"], 10, "the victim"
    )
    assert first.pid in worker.children()
    os.kill(first.pid, signal.SIGKILL)

    assert [r.get(timeout=20) for r in others] == [x * x for x in range(20)]
    returned_pid = victim.get(timeout=20)
    runs = faults.executions(log)
    assert [r.tag for r in runs] == ["victim", "victim"]
    assert returned_pid == runs[1].pid != first.pid
    worker.wait_for_children(2)
    assert tasks.app.broker.dead_letters() == []
    assert tasks.app.broker.stats() == {}


@pytest.mark.timeout(60)
def test_slow_tasks_of_every_master_in_one_batch_keep_their_leases_and_run_once_each(
    workspace, redis_cluster, cluster_url, prefix
):
    """A batch mixes queues of different slots: heartbeats (extend) and hand-backs
    (release) go to each queue's master."""
    tasks = _cluster_workspace(workspace, cluster_url)
    queues = queues_on_every_master(redis_cluster, prefix)
    log = workspace.file("executions.log")
    worker = workspace.start_named_worker("w", "-Q", ",".join(queues), concurrency=2)
    # fast tasks first: the children learn to reserve big batches
    warm = [tasks.square.apply_async((x,), queue=queues[x % 3]) for x in range(60)]
    assert [r.get(timeout=20) for r in warm] == [x * x for x in range(60)]
    children = worker.children()
    for pid in children:  # held still, so that all six wait for one reserve
        os.kill(pid, signal.SIGSTOP)
    try:
        results = [
            tasks.logged_sleep.apply_async((log, f"t{i}", 0.8), queue=queues[i % 3])
            for i in range(6)
        ]
    finally:
        for pid in children:
            os.kill(pid, signal.SIGCONT)

    assert len({r.get(timeout=30) for r in results}) <= 2  # the two children ran them
    assert sorted(r.tag for r in faults.executions(log)) == [f"t{i}" for i in range(6)]
    assert tasks.app.broker.stats() == {}


@pytest.mark.timeout(60)
def test_a_worker_dead_between_storing_a_result_and_the_ack_leaves_one_result(
    workspace, redis_cluster, cluster_url, prefix
):
    """The window the cluster opens: results first, then the ack. The message comes back
    when its lease expires, and the next worker acknowledges it without running it."""
    tasks = _cluster_workspace(workspace, cluster_url)
    log = workspace.file("executions.log")
    result = tasks.logged_square.delay(log, 7)
    broker: Broker = open_broker(cluster_url)
    try:
        (delivery,) = broker.reserve(["default"], 1, lease_s=0.5, wait_s=5)
        assert delivery.id == result.id
        broker.store_results([value_record(result.id, 49, ttl=60)])
    finally:
        broker.close()  # ... and the worker dies here, before its ack

    workspace.start_named_worker("w")

    assert result.get(timeout=20) == 49
    workspace.wait_until(lambda: tasks.app.broker.stats() == {}, 10, "the redelivered ack")
    assert faults.executions(log) == []  # acknowledged without running again


@pytest.mark.timeout(30)
def test_scripts_flushed_from_every_master_are_loaded_again(redis_cluster, broker, prefix):
    queues = queues_on_every_master(redis_cluster, prefix)

    def flush() -> None:
        for node in redis_cluster.nodes:
            client = node.client()
            try:
                client.script_flush()
            finally:
                client.close()

    flush()
    broker.enqueue([msg(f"m-{q}", q) for q in queues])
    flush()
    taken = broker.reserve(queues, 10, lease_s=30, wait_s=1)
    flush()
    results = [value_record(d.id, 1, ttl=60) for d in taken]
    assert broker.ack(taken, results) == [True, True, True]
    flush()
    timer = threading.Timer(0.3, broker.enqueue, [[msg("late", queues[0])]])
    timer.start()
    try:
        (late,) = broker.reserve(queues[:1], 1, lease_s=30, wait_s=10)
    finally:
        timer.join()
    assert late.id == "late"
    assert set(broker.fetch_results([d.id for d in taken])) == {d.id for d in taken}
