"""Contract: many consumers at once — every message is leased once, none is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import taskmill
from taskmill.brokers.base import Broker, Delivery, Outgoing

CHILD = Path(__file__).with_name("drain_child.py")


def test_threads_sharing_one_broker_never_lease_a_message_twice(broker: Broker) -> None:
    broker.enqueue([Outgoing(f"m{i}", "q", b"") for i in range(400)])
    got: list[list[Delivery]] = [[] for _ in range(4)]

    def drain(mine: list[Delivery]) -> None:
        while deliveries := broker.reserve(["q"], 7, lease_s=60, wait_s=0.2):
            assert all(broker.ack(deliveries))
            mine.extend(deliveries)

    threads = [threading.Thread(target=drain, args=(mine,)) for mine in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = Counter(d.id for mine in got for d in mine)
    assert counts == Counter(f"m{i}" for i in range(400))


def test_processes_reserving_at_once_never_lease_a_message_twice_nor_lose_one(
    broker: Broker, broker_url: str
) -> None:
    total = 2000
    broker.enqueue([Outgoing(f"m{i}", "q", b"x" * 100) for i in range(total)])
    src = str(Path(taskmill.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), broker_url, str(max_count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for max_count in (1, 5, 10, 25)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:  # all at once, so that they compete
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=45)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()

    assert [child.returncode for child in children] == [0, 0, 0, 0]
    per_child = [out.split() for out in outputs]
    assert sum(1 for ids in per_child if ids) >= 2, "the children did not compete"
    counts = Counter(id for ids in per_child for id in ids)
    assert counts == Counter(f"m{i}" for i in range(total))
    assert broker.stats() == {}
