"""Result bodies: the task's own exception comes back when it can be rebuilt."""

import pytest

from taskmill import RemoteTraceback, TaskFailed, TimeLimitExceeded, serializers
from taskmill.result import error_record, exception_record, rebuild_error


def _payload(record):
    return serializers.loads(record.body)["error"]


def _raise(exc):
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_builtin_exception_is_rebuilt_with_remote_traceback_as_cause():
    record = exception_record("id", _raise(ValueError("bad value", 3)), ttl=60)
    exc = rebuild_error(_payload(record))
    assert type(exc) is ValueError
    assert exc.args == ("bad value", 3)
    assert isinstance(exc.__cause__, RemoteTraceback)
    assert "raise exc" in exc.__cause__.tb


class CustomError(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


def test_custom_exception_of_an_imported_module_is_rebuilt():
    exc = rebuild_error(_payload(exception_record("id", _raise(CustomError(1, 2)), 60)))
    assert type(exc) is CustomError
    assert exc.args == (1, 2)


def test_unknown_type_becomes_task_failed_naming_it():
    payload = {"type": "nowhere.Missing", "args": [], "message": "gone", "traceback": "tb"}
    exc = rebuild_error(payload)
    assert isinstance(exc, TaskFailed)
    assert "nowhere.Missing: gone" in str(exc)
    assert exc.remote_traceback == "tb"


def test_modules_are_never_imported_to_rebuild_an_error():
    payload = {"type": "antigravity.Fly", "args": [], "message": "", "traceback": ""}
    assert isinstance(rebuild_error(payload), TaskFailed)


def test_unbuildable_arguments_fall_back_to_task_failed():
    payload = {"type": "builtins.UnicodeDecodeError", "args": [1], "message": "m", "traceback": ""}
    assert isinstance(rebuild_error(payload), TaskFailed)


def test_taskmill_decided_failures_keep_their_type():
    record = error_record("id", TimeLimitExceeded, "killed at 1s", 60)
    exc = rebuild_error(_payload(record))
    assert isinstance(exc, TimeLimitExceeded)
    assert "killed at 1s" in str(exc)


@pytest.mark.parametrize("value", [{1, 2}, object()])
def test_unencodable_exception_args_are_dropped_not_fatal(value):
    record = exception_record("id", _raise(ValueError(value)), 60)
    assert _payload(record)["args"] == []
