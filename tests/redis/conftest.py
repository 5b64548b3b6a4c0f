"""Redis for real: private servers a test may kill, pause, lock down or cut off; network
namespaces that stand in for other hosts; workers whose broker is one of those servers.

::

    test process (client) ──────────────▶ RedisServer: a private redis-server, free port,
      │                                     its own --dir, stopped by pid
      │                                       ▲ 127.0.0.1          ▲ 10.231.X.1 (host end)
      └─ workspace ─▶ worker on the host ─────┘                    │      veth pair
                   └▶ worker in namespace NS (ip netns exec) ──────┘ 10.231.X.2 (NS end)

Teardown runs in reverse: workers are stopped first (while their Redis still answers, so
they drain and unregister at once), then the servers, then the namespaces and links.
Tests that only talk to Redis use the shared server with a key prefix of their own
(:func:`shared_url`), and delete their keys afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import redis

from integration.conftest import READY, Worker, Workspace
from redis_server import PrivateRedis, delete_prefix, redis_url_or_skip

#: tasks every Redis test may run, appended to the integration suite's standard module;
#: ``WORKER_NAME`` is set per worker by the test, so a result says who ran it
REDIS_TASKS = """\
import os
import time


def _me():
    return os.environ.get("WORKER_NAME", "")


@app.task
def square_by(x):
    return [x * x, _me()]


@app.task
def slow_square_by(log, x, seconds):
    faults.record(log, f"{x}:{_me()}")
    time.sleep(seconds)
    return [x * x, _me()]
"""


def unique_prefix() -> str:
    return f"tmtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return unique_prefix()


class RedisServer(PrivateRedis):
    """A private ``redis-server`` that may listen on more addresses than 127.0.0.1, ask
    for a password, be paused (SIGSTOP) and resumed, and restart on the same port."""

    def __init__(
        self,
        directory: Path,
        *args: str,
        bind: Sequence[str] = ("127.0.0.1",),
        password: str | None = None,
    ) -> None:
        super().__init__(directory, *args)
        self.bind = list(bind)
        self.password = password
        #: who the test itself logs in as (to inspect or lock down the server)
        self.admin_user: str | None = None
        self.admin_password = password

    def url_for(
        self,
        host: str = "127.0.0.1",
        *,
        user: str = "",
        password: str | None = None,
        db: int = 0,
        **params: object,
    ) -> str:
        auth = ""
        if password is not None:
            auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
        query = f"?{urlencode(params)}" if params else ""
        return f"redis://{auth}{host}:{self.port}/{db}{query}"

    def client(self, **kwargs: Any) -> redis.Redis:
        return super().client(username=self.admin_user, password=self.admin_password, **kwargs)

    def options(self) -> list[str]:
        options = ["--port", str(self.port), "--bind", *self.bind, "--save", ""]
        options += ["--dir", str(self.directory), "--protected-mode", "no"]
        if self.password is not None:
            options += ["--requirepass", self.password]
        return options

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()  # a stopped process would only see SIGTERM once continued
        super().stop()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``start_redis(*args, bind=..., password=...)``: a started private server in its own
    directory under tmp_path; every one is stopped by pid when the test ends."""
    servers: list[RedisServer] = []

    def start(*args: str, **kwargs: Any) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory, *args, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def shared_url() -> Iterator[str]:
    """A URL on the shared server (db 15) with a key prefix of this test's own, deleted
    afterwards."""
    url = redis_url_or_skip(db=15)
    prefix = unique_prefix()
    yield f"{url}?prefix={prefix}"
    delete_prefix(url, prefix)


# -- network namespaces ----------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to the host by a veth pair: another host, for a test."""

    name: str
    host_if: str
    host_ip: str
    ns_ip: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the namespace (the same pid space and filesystem)."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Take the host end of the link down: packets both ways are silently dropped."""
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _free_subnet(taken: set[int]) -> int:
    """A third octet X with 10.231.X.0/24 on no interface here (nor used by this test)."""
    addresses = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, timeout=10
    ).stdout
    start = uuid.uuid4().int % 250
    for i in range(250):
        x = 1 + (start + i) % 250
        if x not in taken and f" 10.231.{x}." not in addresses:
            return x
    raise RuntimeError("no free 10.231.X.0/24 subnet")


@pytest.fixture
def namespaces() -> Iterator[Callable[[], Namespace]]:
    """``create()``: a fresh namespace and veth pair; both are deleted when the test ends,
    pass or fail. Skips unless root with ``ip``."""
    made: list[Namespace] = []

    def create() -> Namespace:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            pytest.skip("network namespaces need root and iproute2's ip")
        tag = uuid.uuid4().hex[:8]
        x = _free_subnet({int(ns.host_ip.split(".")[2]) for ns in made})
        ns = Namespace(f"tm{tag}", f"tmh{tag}", f"10.231.{x}.1", f"10.231.{x}.2")
        made.append(ns)
        ns_if = f"tmn{tag}"
        _ip("netns", "add", ns.name)
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.ns_ip}/24", "dev", ns_if)
        _ip("-n", ns.name, "link", "set", ns_if, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        return ns

    yield create
    for ns in made:
        # deleting one end of a veth pair deletes both
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)


# -- workers on Redis --------------------------------------------------------------------------


class RedisWorkspace(Workspace):
    """The integration suite's workspace, with a Redis broker and workers that may run in
    a namespace under a name of their own (``WORKER_NAME``)."""

    def __init__(self, path: Path, reaper: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(path, reaper)
        self.monkeypatch = monkeypatch

    def use_broker(self, url: str) -> None:
        """The broker of the client (this process) and, unless told otherwise, workers."""
        self.broker_url = url
        self.env["TASKMILL_BROKER"] = url
        self.monkeypatch.setenv("TASKMILL_BROKER", url)

    def write_redis_tasks(self, settings: str = "lease_s=2") -> Path:
        return self.write_tasks(REDIS_TASKS, settings=settings)

    def start_named_worker(
        self,
        name: str,
        *args: str,
        broker: str | None = None,
        namespace: Namespace | None = None,
        concurrency: int = 1,
    ) -> Worker:
        """A worker called ``name`` (its tasks see ``WORKER_NAME``), in ``namespace`` if
        given, on ``broker`` (default: the workspace's); waits until it is ready."""
        command = [sys.executable, "-m", "taskmill", "worker", "-A", "tasks"]
        command += ["-c", str(concurrency), "--grace", "3", "--loglevel", "info", *args]
        if namespace is not None:
            command = namespace.command(*command)
        env = {**self.env, "WORKER_NAME": name, "TASKMILL_BROKER": broker or self.broker_url}
        worker = self.spawn(command, env=env)
        worker.wait_for_log(READY)
        worker.wait_for_children(concurrency)
        return worker


@pytest.fixture
def workspace(
    tmp_path: Path,
    reaper: Any,
    monkeypatch: pytest.MonkeyPatch,
    namespaces: Callable[[], Namespace],
    start_redis: Callable[..., RedisServer],
) -> Iterator[RedisWorkspace]:
    # Asks for namespaces and start_redis only so that they are torn down after it.
    space = RedisWorkspace(tmp_path, reaper, monkeypatch)
    try:
        yield space
    finally:
        space.close()
