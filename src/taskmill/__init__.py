"""taskmill: run Python work across processes and machines.

Celery-shaped tasks (``@app.task``, ``delay``, ``apply_async``, ``Result.get``) on an
embedded SQLite broker (no server) or Redis, with workers that survive their children
dying. Start with :class:`App`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import states
from .app import App, Settings
from .errors import (
    BrokerError,
    ConfigurationError,
    DeadLettered,
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
from .result import Result
from .task import Task

try:
    __version__ = version("taskmill")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "App",
    "BrokerError",
    "ConfigurationError",
    "DeadLettered",
    "MessageDecodeError",
    "MessageError",
    "MessageTooLarge",
    "NotRegistered",
    "RemoteTraceback",
    "Result",
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
]
