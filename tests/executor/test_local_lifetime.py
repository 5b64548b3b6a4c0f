"""An Executor without ``app=`` owns its workers: they start on first use and are gone —
processes, database, sockets — after shutdown, at interpreter exit, when the executor is
garbage collected, and when its client process is killed."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import executor_calls as calls
import psutil

from integration.conftest import alive, wait_until
from taskmill import Executor
from taskmill.brokers.doorbell import Doorbells

HERE = Path(__file__).resolve().parent


def _tree(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if alive(p.pid)]


def _leftovers(directory: str) -> list[str]:
    bells = Doorbells(os.path.join(directory, "broker.db")).directory
    found = [d for d in (directory, bells) if os.path.exists(d)]
    if bells not in found:
        return found
    if not os.listdir(bells):  # made just now by Doorbells() above
        os.rmdir(bells)
        found.remove(bells)
    return found


def test_an_executor_never_used_starts_nothing():
    before = _tree(os.getpid())
    with Executor(max_workers=2):
        pass
    assert _tree(os.getpid()) == before


def test_shutdown_leaves_no_process_and_no_file():
    before = {p.pid for p in _tree(os.getpid())}
    ex = Executor(max_workers=2)
    assert list(ex.map(calls.square, range(10))) == [x * x for x in range(10)]
    pool = ex._dispatcher.pool
    started = [p for p in _tree(os.getpid()) if p.pid not in before]
    assert len(started) == 3  # supervisor and two children
    ex.shutdown(wait=True)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started)
    assert {p.pid for p in _tree(os.getpid())} <= before
    assert _leftovers(pool.directory) == []


def test_a_garbage_collected_executor_stops_its_workers():
    ex = Executor(max_workers=1)
    assert ex.submit(calls.square, 3).result(timeout=30) == 9
    dispatcher = ex._dispatcher
    directory = dispatcher.pool.directory
    del ex
    gc.collect()
    dispatcher.collector.join(30)
    assert not dispatcher.collector.is_alive()
    assert _leftovers(directory) == []


SCRIPT = """\
import time
from taskmill import Executor

def triple(x):  # defined in __main__: the workers import this script as __mp_main__
    return 3 * x

if __name__ == "__main__":
    ex = Executor(max_workers=2)
    futures = [ex.submit(triple, x) for x in range(20)]
    pool = ex._dispatcher.pool
    while pool.process is None:
        time.sleep(0.01)
    print(pool.directory, flush=True)
    print(pool.process.pid, flush=True)
    {ending}
"""


def _script(tmp_path: Path, ending: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT.format(ending=textwrap.dedent(ending)))
    return path


def test_at_interpreter_exit_pending_calls_finish_and_nothing_is_left(tmp_path, reaper):
    # no shutdown(): the interpreter's exit waits for the calls, then the workers go
    script = _script(tmp_path, "print(sum(f.result() for f in futures), flush=True)")
    process = reaper.watch(
        subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
    )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    directory, pid, total = out.split()
    assert int(total) == 3 * sum(range(20))
    assert not alive(int(pid))
    assert _leftovers(directory) == []


def test_when_the_client_is_killed_its_workers_go_too(tmp_path, reaper):
    script = _script(tmp_path, "import time; time.sleep(60)")
    process = reaper.watch(
        subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
    )
    assert process.stdout is not None
    with process.stdout:
        directory = process.stdout.readline().strip()
        pid = int(process.stdout.readline())
    wait_until(lambda: pid and len(reaper.children_of(pid)) == 2, 20, "the worker children")
    children = [p.pid for p in reaper.children_of(pid)]
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    wait_until(lambda: not alive(pid), 20, "the supervisor to exit")
    wait_until(lambda: not any(alive(c) for c in children), 20, "the children to exit")
    wait_until(lambda: _leftovers(directory) == [], 20, "the directory to be removed")
