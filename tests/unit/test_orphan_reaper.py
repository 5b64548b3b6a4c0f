"""The session-start reaper kills what a timed-out test left behind, and nothing else."""

import subprocess
import time

import psutil

from orphans import reap_orphans


def _orphan_in(directory) -> int:
    """A ``sleep`` whose parent exits at once, so it is re-parented to init."""
    out = subprocess.run(
        ["sh", "-c", 'cd "$1" && { sleep 60 >/dev/null 2>&1 & echo $!; }', "sh", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    pid = int(out.stdout)
    deadline = time.monotonic() + 5
    while psutil.Process(pid).ppid() != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def test_an_orphan_in_the_temporary_root_is_killed_and_a_live_sessions_child_is_not(tmp_path):
    root = tmp_path / "root"
    inside = root / "pytest-7" / "test_x0"
    inside.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    orphan = _orphan_in(inside)
    stray_elsewhere = _orphan_in(elsewhere)
    child = subprocess.Popen(["sleep", "60"], cwd=inside)  # its parent (this test) lives
    try:
        assert psutil.Process(orphan).ppid() == 1
        assert reap_orphans(root) == [orphan]
        psutil.wait_procs([psutil.Process(orphan)], timeout=5)
        assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == "zombie"
        assert child.poll() is None
        assert psutil.Process(stray_elsewhere).is_running()
    finally:
        child.kill()
        child.wait(timeout=10)
        psutil.Process(stray_elsewhere).kill()
