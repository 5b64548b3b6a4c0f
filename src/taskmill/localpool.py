"""The private workers of an Executor made without ``app=``: no server, nothing left behind.

::

    client process                               temporary directory (0700)
      Executor ─ threads ──enqueue / results──▶    broker.db (SQLite, WAL)
          │                                            ▲
          │ Popen: python -c "…localpool…main()"      │ reserve / ack
          │ config on stdin (signing key, __main__)    │
          ▼                                            │
      supervisor process (worker.Supervisor) ──fork──▶ child 0 … child N-1

The supervisor is an ordinary ``taskmill worker`` supervisor in a process of its own,
started with a fresh interpreter (never forked from the client, whose threads make
``fork`` unsafe). Before it imports anything of the user's, it prepares itself as
``multiprocessing``'s *spawn* start method does: same ``sys.path`` and working directory,
and the client's ``__main__`` imported as ``__mp_main__``, so callables defined in the
client's script can be unpickled — behind its ``if __name__ == "__main__":`` guard, as
with ``ProcessPoolExecutor`` under spawn. Its children are forked from it, so they have
all of that already.

Lifetime. Messages and results are pickled and signed with a random key that only the
client and this process tree know (passed on the supervisor's stdin). The supervisor asks
the kernel for SIGTERM when the client thread that started it ends, and checks its parent
at start, so it never outlives the client; its children are killed when it dies. ``stop``
sends SIGTERM (drain: the supervisor waits for its children), escalates to SIGKILL, then
removes the directory and the broker's doorbell sockets. A supervisor that finds its
client gone removes the directory itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import logging
import multiprocessing.spawn
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .app import App
from .brokers.doorbell import Doorbells

__all__ = ["LocalPool", "bootstrapping", "main"]

logger = logging.getLogger(__name__)

QUEUE = "default"
LEASE_S = 10.0
DRAIN_GRACE = 5.0
#: arguments as large as ProcessPoolExecutor takes them (SQLite's own limit is 1 GB)
MAX_MESSAGE_BYTES = 512 << 20
PR_SET_PDEATHSIG = 1

#: set while a local pool's supervisor imports the client's ``__main__``: an Executor
#: started then would start a pool of its own, and so on for ever
bootstrapping: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "taskmill_bootstrapping", default=False
)


@dataclass(frozen=True, slots=True)
class _Config:
    parent: int
    directory: str
    url: str
    key: bytes
    workers: int
    preparation: dict[str, Any]


def _app(url: str, key: bytes) -> App:
    return App(
        "taskmill.executor",
        broker=url,
        serializer="pickle",
        signing_key=key,
        lease_s=LEASE_S,
        max_message_bytes=MAX_MESSAGE_BYTES,
    )


class LocalPool:
    """A temporary embedded broker and a worker tree of ``workers`` processes serving it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.directory = os.path.realpath(tempfile.mkdtemp(prefix="taskmill-executor-"))
        self.url = f"sqlite:///{os.path.join(self.directory, 'broker.db')}"
        self._key = os.urandom(32)
        self.app = _app(self.url, self._key)
        self.queue = QUEUE
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Start the supervisor (call from a thread that lives as long as the pool)."""
        config = _Config(
            parent=os.getpid(),
            directory=self.directory,
            url=self.url,
            key=self._key,
            workers=self.workers,
            preparation=_preparation(),
        )
        command = [sys.executable, "-c", "from taskmill.localpool import main; main()"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, close_fds=True)
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(pickle.dumps(config))
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: the caller sees it exit
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        """The supervisor's exit code once it has exited, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """Stop the workers (drain, then kill), and remove every file of the pool."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(DRAIN_GRACE + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.app.close()
        _remove(self.directory)


def _remove(directory: str) -> None:
    """Remove the pool's directory, and the doorbell sockets of its database (a killed
    worker child leaves its socket file behind)."""
    bells = Doorbells(os.path.join(directory, "broker.db")).directory
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(bells, ignore_errors=True)


def _preparation() -> dict[str, Any]:
    """What ``multiprocessing``'s spawn hands a new process: paths, cwd, ``__main__``."""
    data = multiprocessing.spawn.get_preparation_data("taskmill-executor")
    data.pop("authkey", None)  # the pool authenticates with its own signing key
    return data


def _die_with_parent() -> None:
    """SIGTERM this process when the client thread that started it ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main() -> None:
    """The supervisor process of a local pool (``python -c``), configured on stdin."""
    from .worker.supervisor import Supervisor

    config: _Config = pickle.load(sys.stdin.buffer)
    _die_with_parent()
    if os.getppid() != config.parent:
        return  # the client is gone already
    token = bootstrapping.set(True)
    try:
        multiprocessing.spawn.prepare(config.preparation)
    finally:
        bootstrapping.reset(token)
    app = _app(config.url, config.key)
    try:
        code = Supervisor(app, [QUEUE], config.workers, grace=DRAIN_GRACE).run()
    finally:
        if os.getppid() != config.parent:
            _remove(config.directory)
    sys.exit(code)
