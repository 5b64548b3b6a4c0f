"""``taskmill demo``: the whole run, Ctrl-C in the middle of it, a missing package.

The demo runs as a real command (``python -m taskmill demo``) with ``TMPDIR`` pointing
into the test's ``tmp_path``, so everything it makes there can be checked to be gone.
Every process of its tree is watched with psutil while it runs; whatever is still alive
at the end fails the test and is killed by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from taskmill import demo as demo_module
from taskmill.cli import cli


def _start_demo(tmp_path, reaper, *args):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TASKMILL_BROKER"}
    env.update(TMPDIR=str(temp), COLUMNS="120")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskmill", "demo", *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    reaper.watch(process)
    return process, log, temp


class Tree:
    """Every process seen under one pid while it ran."""

    def __init__(self, pid):
        self.root = psutil.Process(pid)
        self.seen: set[psutil.Process] = set()
        self.commands: dict[int, tuple[int, list[str]]] = {}  # pid: parent, command line

    def look(self):
        try:
            found = set(self.root.children(recursive=True))
        except psutil.NoSuchProcess:
            return self.seen
        # each time: a process seen before its exec changes its command line (and an
        # exiting one has none)
        for process in found:
            with contextlib.suppress(psutil.Error):
                if command := process.cmdline():
                    self.commands[process.pid] = (process.ppid(), command)
        self.seen |= found
        return self.seen

    def workers(self):
        """Pids of the ``taskmill worker`` supervisors seen (their children share their
        command line, but not their parent)."""
        return [
            pid
            for pid, (parent, command) in self.commands.items()
            if parent == self.root.pid and command[1:4] == ["-m", "taskmill", "worker"]
        ]

    def alive(self):
        left = []
        for process in self.seen:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process)
            except psutil.NoSuchProcess:
                pass
        return left

    def kill_leftovers(self):
        left = self.alive()
        for process in left:
            process.kill()
        psutil.wait_procs(left, timeout=5)
        return left


def _watch_until_exit(process, tree, timeout):
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        tree.look()
        if time.monotonic() > deadline:
            pytest.fail(f"the demo still runs after {timeout}s")
        time.sleep(0.05)
    return process.returncode


@pytest.mark.timeout(180)
def test_demo_runs_every_workload_checks_it_and_cleans_up(tmp_path, reaper):
    process, log, temp = _start_demo(tmp_path, reaper)
    tree = Tree(process.pid)

    code = _watch_until_exit(process, tree, timeout=170)

    output = log.read_text()
    assert code == 0, output
    assert "map: 10,000 squares in order" in output
    assert "Executor.map: 10,000 squares in order" in output
    assert "equal to one process's" in output
    assert "every output equal to the one-process blur" in output
    assert "best:" in output
    assert "39 URLs on 3 hosts: " in output
    for crawled in ("33 fetched", "3 not found", "3 failed after their retries"):
        assert crawled in output
    for name in ("squares", "data", "images", "ml", "crawler"):
        assert f"│ {name}" in output  # a row of the summary table
    assert "temporary files removed" in output
    assert len(tree.workers()) == 5  # one per workload
    assert tree.kill_leftovers() == []
    assert list(temp.iterdir()) == []


def _children(pid):
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal", "demo-pid"])
def test_ctrl_c_mid_demo_stops_every_process_and_removes_the_files(tmp_path, reaper, whole_group):
    process, log, temp = _start_demo(tmp_path, reaper, "data", "images")
    tree = Tree(process.pid)
    deadline = time.monotonic() + 60
    # until the images workload's worker runs, with its two children
    while len(tree.workers()) < 2 or len(_children(tree.workers()[-1])) < 2:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no worker started:\n" + log.read_text()
        tree.look()
        time.sleep(0.02)
    tree.look()
    assert len(tree.alive()) >= 3

    if whole_group:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        process.send_signal(signal.SIGINT)
    code = _watch_until_exit(process, tree, timeout=60)

    output = log.read_text()
    assert code == 130, output
    assert "interrupted" in output
    assert "Traceback" not in output
    assert tree.kill_leftovers() == []
    assert list(temp.iterdir()) == []


def test_missing_packages_are_named_with_how_to_install_them(monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setitem(demo_module.NEEDED, "no_such_module_for_the_demo", "no-such-package")

    run = CliRunner().invoke(cli, ["demo"])

    assert run.exit_code == 2
    assert "no-such-package" in run.output
    assert "pip install 'taskmill[examples]'" in run.output
    assert run.exception is None or isinstance(run.exception, SystemExit)


@pytest.mark.timeout(60)
def test_a_missing_numpy_is_one_message_and_exit_code_2_never_a_traceback(tmp_path):
    # sys.modules["numpy"] = None makes numpy unimportable, as if it were not installed
    code = (
        "import sys; sys.modules['numpy'] = None; sys.argv = ['taskmill', 'demo']; "
        "from taskmill.cli import main; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=50
    )

    assert run.returncode == 2
    assert "numpy" in run.stderr
    assert "taskmill[examples]" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert list(tmp_path.iterdir()) == []


def test_missing_packages_lists_only_those_that_cannot_be_imported():
    needed = {"json": "json", "no_such_module_for_the_demo": "no-such-package"}

    assert demo_module.missing_packages(needed) == ["no-such-package"]
