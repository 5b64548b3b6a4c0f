"""Redis for tests: the shared server on 127.0.0.1:6379, or a private one on a free port.

Tests that only talk to Redis use the shared server, isolated by a key prefix (or a
database) of their own, and delete their keys afterwards. Tests that stop, restart or cut
off Redis start a private ``redis-server`` with :class:`PrivateRedis`, never touching the
shared one. Without a server, Redis tests skip, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import pytest
import redis

SHARED = ("127.0.0.1", 6379)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required in CI: {why}")
    pytest.skip(f"no Redis here: {why}")


def redis_url_or_skip(db: int = 15) -> str:
    """The shared server's URL for ``db``; skips (fails in CI) when it does not answer."""
    client = redis.Redis(*SHARED, db=db, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"{SHARED[0]}:{SHARED[1]} does not answer ({exc})")
    finally:
        client.close()
    return f"redis://{SHARED[0]}:{SHARED[1]}/{db}"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` on the server and database of ``url``."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of the test's own, on a free port, stopped by pid."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.args = args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def options(self) -> list[str]:
        """The server's command line; a subclass adds binds, a password, ..."""
        return [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
        ]

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client for the test itself, to check on or set up the server."""
        return redis.Redis("127.0.0.1", self.port, socket_connect_timeout=1, **kwargs)

    def start(self) -> Self:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed")  # skips, or fails in CI
        assert binary is not None
        log_path = self.directory / "redis.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, *self.options(), *self.args], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            client = self.client()
            try:
                client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.02)
            finally:
                client.close()
        self.stop()
        log_text = log_path.read_text(errors="replace")
        raise RuntimeError(f"private redis-server on port {self.port} did not start:\n{log_text}")

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
