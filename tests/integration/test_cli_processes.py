"""The ``taskmill`` command as a user runs it: bad ``-A`` targets, ``status``, and the
README quick start, each in real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

# The README quick start as written: the very files of examples/quickstart.
QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


def assert_one_clear_line(run, *fragments):
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_worker_with_a_missing_module_says_so_in_one_line_and_exits_2(workspace):
    run = workspace.run_cli("worker", "-A", "no_such_tasks")

    assert_one_clear_line(run, "no_such_tasks", "no module named")


def test_worker_with_a_missing_attribute_says_so_in_one_line_and_exits_2(workspace):
    workspace.write_tasks()

    run = workspace.run_cli("worker", "-A", "tasks:no_such_app")

    assert_one_clear_line(run, "tasks:no_such_app", "no attribute 'no_such_app'")


def test_worker_with_a_module_that_fails_to_import_says_why_and_exits_2(workspace):
    workspace.write("broken.py", "raise RuntimeError('half-written module')\n")

    run = workspace.run_cli("worker", "-A", "broken")

    assert_one_clear_line(run, "RuntimeError", "half-written module")


def test_status_shows_queue_depths_and_the_live_worker(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    for x in range(3):
        tasks.square.apply_async((x,), countdown=60)
    for x in range(2):
        tasks.square.apply_async((x,), queue="nobody_listens")

    table = workspace.run_cli("status")
    as_json = workspace.run_cli("status", "--json")

    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
    assert rows["default"][1:5] == ["0", "3", "0", "0"]  # ready, delayed, in flight, dead
    assert rows["nobody_listens"][1:5] == ["2", "0", "0", "0"]
    worker_id = f"{socket.gethostname()}:{worker.pid}"
    assert rows[worker_id][1:5] == [socket.gethostname(), str(worker.pid), "2", "default"]
    report = json.loads(as_json.stdout)
    assert report["queues"]["default"] == {"ready": 0, "delayed": 3, "in_flight": 0, "dead": 0}
    (live,) = report["workers"]
    assert (live["host"], live["pid"], live["concurrency"]) == (
        socket.gethostname(),
        worker.pid,
        2,
    )
    assert sorted(live["children"]) == worker.children()


def test_the_readme_quick_start_works_as_written(workspace):
    for name in ("tasks.py", "client.py"):
        shutil.copy(QUICKSTART / name, workspace.path / name)
    env = {k: v for k, v in workspace.env.items() if k != "TASKMILL_BROKER"}
    taskmill = str(Path(sys.executable).parent / "taskmill")

    worker = workspace.spawn([taskmill, "worker", "-A", "tasks", "--loglevel=info"], env=env)
    worker.wait_for_log("ready:")
    client = subprocess.run(
        [sys.executable, "client.py"],
        check=False,
        cwd=workspace.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert client.returncode == 0, client.stderr
    assert "status: " in client.stdout
    assert "result: 16" in client.stdout
    assert (workspace.path / "taskmill.db").exists()  # the default broker, next to tasks.py
    assert len(worker.children()) == (os.cpu_count() or 1)


def test_the_quick_start_script_runs_the_client_and_a_thousand_tasks(tmp_path):
    for name in ("tasks.py", "client.py", "run.py"):
        shutil.copy(QUICKSTART / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "TASKMILL_BROKER"}

    run = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "result: 16" in run.stdout
    assert "1,000 more tasks: every result correct" in run.stdout
    assert "worker stopped (exit code 0)" in run.stdout
