"""The embedded broker under the faults a machine can throw at one SQLite file: every
process using it killed at once, again and again, and the disk filling up. A task whose
``.delay()`` returned is never lost, the database stays intact, and work resumes."""

from __future__ import annotations

import errno
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ledger import tally
from runs import Sent, time_until, unfinished, wait_all_final

from taskmill import BrokerError, DiskFull

#: a client that sends tasks until it is killed, writing down each id whose delay() returned
CLIENT = """\
import os, sys, time
import tasks

ids, log, x = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = os.open(ids, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
while True:
    result = tasks.logged_square.delay(log, x)
    os.write(out, f"{result.id} {x}\\n".encode())
    x += 1
    time.sleep(0.001)
"""


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def accepted(ids_file: Path) -> Sent:
    sent = Sent()
    if ids_file.exists():
        for line in ids_file.read_text().splitlines():
            id, x = line.split()
            sent.add(id, int(x) ** 2, x)
    return sent


@pytest.mark.parametrize(
    "rounds", [pytest.param(5, id="quick"), pytest.param(50, id="full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(900)
def test_killing_every_process_at_once_loses_no_accepted_task_and_keeps_the_database_intact(
    workspace, figures, rounds
):
    workspace.write_tasks()
    workspace.write("client.py", CLIENT)
    tasks = workspace.import_tasks()
    ids_file = workspace.path / "accepted.txt"
    log = workspace.file("executions.log")
    database = workspace.path / "broker.db"
    rng = random.Random(rounds)
    checks = []
    worker_command = [sys.executable, "-m", "taskmill", "worker", "-A", "tasks", "-c", "1"]

    for round in range(rounds):
        workers = [workspace.spawn(worker_command) for _ in range(2)]
        client = workspace.reaper.watch(
            subprocess.Popen(
                [sys.executable, "client.py", str(ids_file), log, str(round * 1_000_000)],
                cwd=workspace.path,
                env=workspace.env,
            )
        )
        before = len(accepted(ids_file).expected)
        for worker in workers:
            worker.wait_for_log("ready:")
        workspace.wait_until(
            lambda n=before: len(accepted(ids_file).expected) >= n + 20, 20, "the client sending"
        )
        time.sleep(rng.uniform(0, 0.5))
        processes = [client.pid]
        for worker in workers:
            processes += [worker.pid, *worker.children()]
        for pid in processes:
            os.kill(pid, signal.SIGKILL)
        client.wait(5)
        for worker in workers:
            worker.wait(5)
        workspace.wait_until(
            lambda ps=processes: not any(workspace.alive(p) for p in ps), 5, "every process dead"
        )
        checks.append(integrity(database))
        assert checks[-1] == "ok", f"round {round}: {checks[-1]}"

    sent = accepted(ids_file)
    workspace.start_worker(concurrency=2)
    took = wait_all_final(tasks.app, sent.expected, 300)

    t = tally(tasks.app, sent.expected, log, sent.tags)
    figures.record(
        "SQLite kill -9 of every process",
        load=f"{t.sent:,} tasks accepted from a client sending with a 1 ms pause between "
        "calls, 2 workers x 1 child",
        faults=f"{rounds} x kill -9 of the client and both workers (supervisors and children) "
        "at once",
        tally=t,
        recovery=f"integrity_check ok after each of {rounds} kills; the backlog done "
        f"{took:.1f} s after a worker restarted",
    )
    t.check(max_duplicates=None)  # a killed child's batch may run again: at least once
    assert integrity(database) == "ok"


#: big enough that the filler file, not the database and its WAL (which SQLite lets grow
#: to about 4 MiB before a checkpoint), is what fills it
DISK_MIB = 32
#: big enough that the database's free pages, left by the tasks of the cycles before, take
#: few of them (the disk fills again soon), and slow enough that work is left to do then
PADDING = 16_000
PAD_TASK = """
import time as _time

@app.task(name="padded_square")
def padded_square(x, padding):
    _time.sleep(0.05)
    return x * x
"""


@pytest.fixture
def tiny_disk(workspace, monkeypatch):
    """A tmpfs of DISK_MIB MiB holding the workspace's broker database."""
    disk = workspace.path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        workspace.broker_url = f"sqlite:///{disk / 'broker.db'}"
        workspace.env["TASKMILL_BROKER"] = workspace.broker_url
        monkeypatch.setenv("TASKMILL_BROKER", workspace.broker_url)
        yield disk
    finally:
        for worker in workspace.workers:
            worker.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk up with one file; returns it."""
    filler = disk / "filler"
    chunk = b"\0" * (64 << 10)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def send_until_full(task, sent: Sent, start: int) -> DiskFull:
    """Send padded tasks until the broker refuses one; returns the error it raised."""
    for x in range(start, start + 100_000):
        try:
            result = task.delay(x, "p" * PADDING)
        except BrokerError as exc:
            assert isinstance(exc, DiskFull), f"{type(exc).__name__}: {exc}"
            return exc
        sent.add(result.id, x * x, x)
    pytest.fail("the disk never filled up")


@pytest.mark.parametrize(
    "cycles", [pytest.param(1, id="quick"), pytest.param(5, id="full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(300)
def test_a_full_disk_is_a_clear_error_and_work_resumes_when_space_returns(
    workspace, tiny_disk, figures, cycles
):
    workspace.write_tasks(PAD_TASK)
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    pids = {worker.pid, *worker.children()}
    database = tiny_disk / "broker.db"
    sent = Sent()
    refused = []
    resumed = []
    pending = []

    for cycle in range(cycles):
        filler = fill(tiny_disk)
        os.truncate(filler, max(0, os.path.getsize(filler) - (2 << 20)))  # 2 MiB left
        error = send_until_full(tasks.padded_square, sent, cycle * 100_000)
        refused.append(error)
        # the worker meanwhile: its writes fail for want of space, and it says so
        seen = len(worker.log())
        logged = workspace.wait_until(
            lambda n=seen: worker.log()[n:].count("disk is full"), 10, "the worker's error"
        )
        time.sleep(1.0)
        assert worker.process.poll() is None

        pending.append(len(unfinished(tasks.app, sent.expected)))
        assert pending[-1] > 0
        filler.unlink()  # space returns
        resumed.append(
            time_until(lambda n=pending[-1]: len(unfinished(tasks.app, sent.expected)) < n, 30)
        )
        wait_all_final(tasks.app, sent.expected, 120)
        left = unfinished(tasks.app, sent.expected)
        assert not left, f"cycle {cycle}: work did not resume"
        assert integrity(database) == "ok"
        assert logged

    assert tasks.square.delay(9).get(timeout=15) == 81
    t = tally(tasks.app, sent.expected)
    figures.record(
        "disk full (SQLite)",
        load=f"{t.sent:,} tasks of {PADDING // 1000} KB and 50 ms, 1 worker x 2 children, "
        f"a {DISK_MIB} MiB tmpfs",
        faults=f"the disk filled {cycles} time(s) while tasks were sent and run",
        tally=t,
        duplicates="—",
        recovery=f"the sender got DiskFull each time; the worker resumed by itself "
        f"≤ {max(resumed):.1f} s after space returned (max), all its backlog done; "
        "integrity_check ok",
    )
    t.check(max_duplicates=None)
    for error in refused:
        assert "the disk is full" in str(error)
        assert not isinstance(error, sqlite3.Error)
    assert {worker.pid, *worker.children()} == pids
    assert "Traceback" not in worker.log()
