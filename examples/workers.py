"""Start a ``taskmill worker`` from a script, and stop it again, by pid.

::

    run.py ──Popen──▶ taskmill worker -A taskmill.examples.NAME.tasks -c N   (log: a file)
      │                 ├─ child 1      (each child: reserve ─▶ run ─▶ store result ─▶ ack)
      │                 └─ child N
      └─ on leaving the ``with`` block, however it is left (Ctrl-C too):
         SIGTERM (the worker drains), SIGKILL if it is still there after a while

In production you start workers yourself (``taskmill worker -A tasks`` under systemd, in
a container, on other machines); each example starts its own so that one command shows
everything. The worker's output goes to a file, not a pipe: a pipe nobody reads fills up
and blocks the worker.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["running_worker"]

#: how long a worker may take to start, and to drain when told to stop
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@contextlib.contextmanager
def running_worker(
    tasks_module: str, log: Path, concurrency: int = 2, options: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``taskmill worker -A tasks_module -c concurrency OPTIONS``, ready inside the block.

    The worker uses the same broker as this process: the ``TASKMILL_BROKER`` environment
    variable, else ``taskmill.db`` in the working directory, both of which it inherits.
    """
    command = [sys.executable, "-m", "taskmill", "worker", "-A", tasks_module]
    command += ["-c", str(concurrency), "--loglevel", "info", "--grace", "5", *options]
    with log.open("wb") as out:
        worker = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(worker, log)
        yield worker
    finally:
        _stop(worker)


def _wait_until_ready(worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while b"ready:" not in log.read_bytes():
        if worker.poll() is not None:
            raise RuntimeError(
                f"the worker exited with code {worker.returncode} before it was ready; "
                f"its log ({log}):\n{log.read_text(errors='replace')}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker was not ready after {START_TIMEOUT:.0f}s; see {log}")
        time.sleep(0.05)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL; its children die with it (they watch their supervisor)."""
    if worker.poll() is not None:
        return
    try:
        worker.send_signal(signal.SIGTERM)
        worker.wait(STOP_TIMEOUT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        worker.kill()
        worker.wait()
