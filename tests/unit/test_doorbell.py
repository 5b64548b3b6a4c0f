"""Doorbells wake a waiting process at once, lose no ring, and clean up after the dead."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from taskmill.brokers.doorbell import SETTLE_S, Doorbells


def test_a_ring_wakes_a_waiter_at_once(tmp_path):
    bells = Doorbells(str(tmp_path / "db"))
    bells.listen("reserve")
    started = time.monotonic()
    bells.ring("reserve")
    bells.wait("reserve", 5)
    assert time.monotonic() - started < 0.5
    bells.close()


def test_a_ring_before_the_wait_is_not_lost_and_other_kinds_do_not_wake(tmp_path):
    bells = Doorbells(str(tmp_path / "db"))
    bells.listen("reserve")
    bells.listen("result")
    bells.ring("result")  # rung between the waiter's check and its wait
    started = time.monotonic()
    bells.wait("result", 5)
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    bells.wait("reserve", 0.2)  # nobody rang for reserve: sleeps its timeout
    assert time.monotonic() - started >= 0.19
    bells.close()


def test_a_ring_from_another_process_wakes_the_waiter(tmp_path):
    db = str(tmp_path / "db")
    bells = Doorbells(db)
    bells.listen("reserve")
    code = textwrap.dedent(
        f"""
        from taskmill.brokers.doorbell import Doorbells
        Doorbells({db!r}).ring("reserve")
        """
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    bells.wait("reserve", 10)
    assert time.monotonic() - started < 5
    bells.close()


def test_the_socket_of_a_dead_process_is_removed_by_the_next_ring(tmp_path):
    db = str(tmp_path / "db")
    code = textwrap.dedent(
        f"""
        import time
        from taskmill.brokers.doorbell import Doorbells
        Doorbells({db!r}).listen("reserve")
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        bells = Doorbells(db)
        theirs = [n for n in os.listdir(bells.directory) if f"-{child.pid}-" in n]
        assert len(theirs) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout:
            child.stdout.close()
    bells.listen("result")  # keeps the directory
    bells.ring("reserve")
    assert not [n for n in os.listdir(bells.directory) if f"-{child.pid}-" in n]
    bells.close()


def test_close_removes_this_process_sockets(tmp_path):
    bells = Doorbells(str(tmp_path / "db"))
    bells.listen("reserve")
    bells.listen("result")
    assert len([n for n in os.listdir(bells.directory) if f"-{os.getpid()}-" in n]) == 2
    bells.close()
    assert not os.path.exists(bells.directory)  # it was empty: removed


def test_without_a_usable_directory_bells_are_off_and_wait_just_sleeps(tmp_path):
    bells = Doorbells(str(tmp_path / "db"))
    os.chmod(bells.directory, 0o777)  # anyone could plant sockets: not trusted
    untrusted = Doorbells(str(tmp_path / "db"))
    assert not untrusted.enabled
    started = time.monotonic()
    untrusted.ring("reserve")
    untrusted.wait("reserve", 0.1)
    assert time.monotonic() - started >= 0.09
    os.chmod(bells.directory, 0o700)
    bells.close()


def test_a_waiter_bound_after_a_listing_is_rung_by_the_next_ring(tmp_path):
    """A ring reuses its listing only while the directory is unchanged: binding a socket
    changes it, so the very next ring lists again and reaches the new waiter."""
    ringer = Doorbells(str(tmp_path / "db"))
    ringer.ring("reserve")  # lists the directory: no reserver yet
    time.sleep(2 * SETTLE_S)  # a settled listing, the kind a ring reuses
    waiter = Doorbells(str(tmp_path / "db"))
    waiter.listen("reserve")
    ringer.ring("reserve")
    started = time.monotonic()
    waiter.wait("reserve", 5.0)
    assert time.monotonic() - started < 0.1
    waiter.close()
    ringer.close()


def test_rings_reuse_the_listing_while_the_directory_is_unchanged(tmp_path, monkeypatch):
    waiter = Doorbells(str(tmp_path / "db"))
    waiter.listen("result")
    ringer = Doorbells(str(tmp_path / "db"))
    ringer.ring("result")
    time.sleep(2 * SETTLE_S)
    ringer.ring("result")  # a listing taken after the directory settled
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or real_listdir(path))
    for _ in range(10):
        ringer.ring("result")
    assert listed == []
    another = Doorbells(str(tmp_path / "db"))
    another.listen("result")  # the directory changes: listed again
    ringer.ring("result")
    assert listed == [ringer.directory]
    for bells in (another, waiter, ringer):
        bells.close()
