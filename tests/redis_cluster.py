"""A real Redis Cluster for tests: three masters on free ports, in directories of their own.

::

    PrivateCluster ── starts ──▶ 3 x redis-server --cluster-enabled yes (PrivateRedis)
                    ── then ───▶ redis-cli --cluster create a b c --cluster-yes
                    ── waits ──▶ CLUSTER INFO says cluster_state:ok on every node

The servers are stopped by pid when the cluster stops. Without ``redis-server`` or
``redis-cli`` the tests that need a cluster skip, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

import redis
from redis.cluster import RedisCluster

from redis_server import PrivateRedis, _unavailable

MASTERS = 3


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher) is free too; both under 65536."""
    for _ in range(1000):
        port = random.randint(20000, 55000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNode(PrivateRedis):
    """One master of the cluster, on a port whose bus port (+10000) is free."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = free_cluster_port()

    def options(self) -> list[str]:
        return [
            *super().options(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
            "--appendonly",
            "no",
        ]


class PrivateCluster:
    """Three masters forming a cluster (no replicas); ``url`` names them all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def client(self) -> RedisCluster:
        """A cluster client for the test itself, to check on the keys."""
        node = self.nodes[0]
        return RedisCluster(host="127.0.0.1", port=node.port, socket_connect_timeout=2)

    def start(self) -> Self:
        cli = shutil.which("redis-cli")
        if cli is None:
            _unavailable("redis-cli is not installed")  # skips, or fails in CI
        assert cli is not None
        try:
            for i in range(MASTERS):
                directory = self.directory / f"node-{i}"
                directory.mkdir()
                self.nodes.append(ClusterNode(directory))
                self.nodes[-1].start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            done = subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
                )
            self._wait_until_ok(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [self._state(n) for n in self.nodes]
            if all(s == "ok" for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form: cluster_state {states}")
            time.sleep(0.1)

    @staticmethod
    def _state(node: ClusterNode) -> str:
        client = node.client()
        try:
            return str(client.cluster("info").get("cluster_state", ""))
        except redis.RedisError:
            return ""
        finally:
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def delete_cluster_prefix(cluster: PrivateCluster, prefix: str) -> None:
    """Delete every key under ``prefix:`` on every master."""
    for node in cluster.nodes:
        client = node.client()
        try:
            for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
                client.delete(key)
        finally:
            client.close()
