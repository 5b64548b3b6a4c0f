"""The quick start in one command: start a worker, run the client, send 1,000 more tasks, stop.

    python examples/quickstart/run.py

Everything happens in this folder with the embedded SQLite broker (taskmill.db): no
server. The worker is stopped with SIGTERM, which drains it: nothing is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent


def start_worker() -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskmill", "worker", "-A", "tasks", "-c", "2", "--loglevel=info"],
        cwd=HERE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    for line in worker.stderr:
        print("  worker |", line.rstrip())
        if "ready:" in line:
            # keep draining its log, so a chatty worker never blocks on a full pipe
            threading.Thread(target=_echo, args=(worker.stderr,), daemon=True).start()
            return worker
    raise SystemExit(f"the worker exited before it was ready (exit code {worker.wait()})")


def _echo(stream: IO[str]) -> None:
    for line in stream:
        print("  worker |", line.rstrip())


def main() -> int:
    os.chdir(HERE)
    os.environ.pop("TASKMILL_BROKER", None)
    sys.path.insert(0, str(HERE))
    print("$ taskmill worker -A tasks -c 2 --loglevel=info")
    worker = start_worker()
    try:
        print("$ python client.py")
        subprocess.run([sys.executable, "client.py"], cwd=HERE, check=True, timeout=60)
        from tasks import compute_square

        started = time.perf_counter()
        results = [compute_square.delay(i) for i in range(1000)]
        values = [r.get(timeout=60) for r in results]
        took = time.perf_counter() - started
        assert values == [i * i for i in range(1000)]
        print(f"1,000 more tasks: every result correct, {1000 / took:,.0f} tasks/s end to end")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    print(f"worker stopped (exit code {worker.returncode})")
    return worker.returncode


if __name__ == "__main__":
    sys.exit(main())
