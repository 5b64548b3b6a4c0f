"""The systems under test, by the name used on the command line and in the tables."""

from __future__ import annotations

from .base import System, Unavailable, WorkerSpec
from .celery import Celery
from .dramatiq import Dramatiq
from .floor import Floor
from .huey import HueyRedis, HueySQLite
from .rq import RQ
from .taskmill import TaskmillRedis, TaskmillSQLite

__all__ = ["SYSTEMS", "System", "Unavailable", "WorkerSpec"]

#: table order: taskmill first (the reference), then the embedded peer, then Redis peers,
#: then the floor (a hand-written queue with no guarantees: the yardstick, not a peer)
SYSTEMS: dict[str, type[System]] = {
    cls.name: cls
    for cls in (TaskmillSQLite, TaskmillRedis, HueySQLite, Celery, Dramatiq, RQ, HueyRedis, Floor)
}
