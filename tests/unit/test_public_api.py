"""The public API is exactly what __all__ says: adding or removing a name is a decision."""

import taskmill

EXPECTED = {
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
}


def test_all_is_pinned():
    assert set(taskmill.__all__) == EXPECTED


def test_every_exported_name_exists():
    for name in taskmill.__all__:
        assert hasattr(taskmill, name), name


def test_every_error_derives_from_taskmill_error_except_interrupts():
    for name in taskmill.__all__:
        obj = getattr(taskmill, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            if obj is taskmill.SoftTimeLimitExceeded:
                assert not issubclass(obj, Exception)
            else:
                assert issubclass(obj, taskmill.TaskmillError), name


def test_result_timeout_is_a_timeout_error():
    assert issubclass(taskmill.ResultTimeout, TimeoutError)
