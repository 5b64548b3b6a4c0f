"""taskmill: run Python work across processes and machines.

Celery-shaped tasks (``@app.task``, ``delay``, ``apply_async``, ``Result.get``) on an
embedded SQLite broker (no server) or Redis, with workers that survive their children
dying. Start with :class:`App`; for a ``concurrent.futures`` executor, :class:`Executor`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import states
from .app import App, Settings
from .errors import (
    BrokenExecutor,
    BrokerError,
    ConfigurationError,
    DeadLettered,
    DiskFull,
    MemoryLimitExceeded,
    MessageDecodeError,
    MessageError,
    MessageTooLarge,
    NotRegistered,
    RemoteTraceback,
    ResultTimeout,
    Retry,
    SoftTimeLimitExceeded,
    TaskFailed,
    TaskmillError,
    TaskRevoked,
    TimeLimitExceeded,
    UnknownTask,
    WorkerLost,
)
from .executor import Executor
from .progress import Progress, update_progress
from .result import Result
from .resultset import ResultSet
from .task import Task

try:
    __version__ = version("taskmill")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "App",
    "BrokenExecutor",
    "BrokerError",
    "ConfigurationError",
    "DeadLettered",
    "DiskFull",
    "Executor",
    "MemoryLimitExceeded",
    "MessageDecodeError",
    "MessageError",
    "MessageTooLarge",
    "NotRegistered",
    "Progress",
    "RemoteTraceback",
    "Result",
    "ResultSet",
    "ResultTimeout",
    "Retry",
    "Settings",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskFailed",
    "TaskRevoked",
    "TaskmillError",
    "TimeLimitExceeded",
    "UnknownTask",
    "WorkerLost",
    "__version__",
    "states",
    "update_progress",
]
