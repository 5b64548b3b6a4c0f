"""Finding what tests of an earlier session left running (see ``tests/conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def reap_orphans(root: Path) -> list[int]:
    """Kill the processes re-parented to init whose working directory is inside ``root``;
    their pids."""
    killed = []
    inside = str(root) + os.sep
    for process in psutil.process_iter(["ppid", "cwd"]):
        cwd = process.info["cwd"]
        if process.info["ppid"] != 1 or not cwd or not (cwd + os.sep).startswith(inside):
            continue
        try:
            process.kill()  # psutil checks the start time: never a reused pid
            killed.append(process.pid)
        except psutil.NoSuchProcess:
            pass
    return killed
