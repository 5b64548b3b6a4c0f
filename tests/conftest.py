"""Fixtures every suite may use.

``reaper``: each process a test starts is handed to it, and stopped by pid when the test
ends, pass or fail: SIGTERM, a wait, then SIGKILL. The process's children are looked up
with psutil *before* it is stopped (once it is gone they are orphans nobody can find),
and killed by pid afterwards if they are still alive, so no test leaves a worker child
behind. psutil checks a process's start time before signalling it, so a pid the kernel
has reused since is never hit.

Orphans of earlier sessions: pytest ends a test that hits its timeout with ``os._exit``,
so that test's teardown never stops what it started (a private ``redis-server``, a worker).
Such a process is re-parented to init. At the start of each session, every process whose
parent is init and whose working directory is inside pytest's temporary root
(``pytest-of-USER``, where tests run their servers and workers) is killed.

``redis_cluster``: a real three-master Redis Cluster (:mod:`redis_cluster`), started once
per session on first use and stopped by pid at its end; tests share it, each under a key
prefix of its own.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psutil
import pytest

from orphans import reap_orphans

if TYPE_CHECKING:
    from redis_cluster import PrivateCluster


class Reaper:
    """Stops, at the end of a test, every process given to it and all their children."""

    def __init__(self) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []
        self._children: dict[int, set[psutil.Process]] = {}

    def watch(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self._processes.append(process)
        return process

    def children_of(self, pid: int) -> list[psutil.Process]:
        """The live children of ``pid`` (zombies left out), remembered for the cleanup."""
        try:
            found = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        alive = []
        for child in found:
            self._children.setdefault(pid, set()).add(child)
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.NoSuchProcess:
                pass
        return alive

    def stop(self, process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, SIGKILL; then kill its leftover children."""
        if process.poll() is None:  # once it is reaped, its pid may be someone else's
            self.children_of(process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_children(self._children.pop(process.pid, set()))

    def stop_all(self) -> None:
        for process in self._processes:
            self.stop(process)
        for children in self._children.values():
            self._kill_children(children)

    @staticmethod
    def _kill_children(children: set[psutil.Process]) -> None:
        leftovers = []
        for child in children:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue  # dead already; only its new parent can reap it
                child.kill()  # psutil refuses if the pid now belongs to someone else
                leftovers.append(child)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=5)


@pytest.fixture(scope="session", autouse=True)
def _no_orphans_of_earlier_sessions(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.getbasetemp().parent
    if root.name.startswith("pytest-of-"):  # pytest's own root, not a --basetemp
        reap_orphans(root)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--write-reliability",
        action="store_true",
        help="write the chaos figures of this run into docs/reliability.md (tests/chaos/)",
    )


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    found = Reaper()
    try:
        yield found
    finally:
        found.stop_all()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    from redis_cluster import PrivateCluster

    with PrivateCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
