"""The SQLite broker's own behaviour: URLs, damaged files, errors, fork safety."""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from taskmill.brokers import open_broker
from taskmill.brokers.base import Outgoing
from taskmill.brokers.sqlite import SQLiteBroker
from taskmill.errors import BrokerError, ConfigurationError


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://host/broker.db",
        "sqlite:/broker.db",
        "sqlite:///file:broker.db?mode=memory",
        "sqlite:///broker.db?timeout=5",
        "redis://localhost:6379/0",
    ],
)
def test_a_url_naming_no_database_file_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite") as caught:
        SQLiteBroker(url)
    assert url in str(caught.value)


def test_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/broker.db"

    with pytest.raises(ConfigurationError, match="does not exist") as caught:
        SQLiteBroker(url)
    assert url in str(caught.value)
    assert not (tmp_path / "missing").exists()


def test_a_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = open_broker("sqlite:///relative.db")
    try:
        assert isinstance(broker, SQLiteBroker)
        assert broker.url == "sqlite:///relative.db"
        monkeypatch.chdir("/")  # the database stays where it was opened
        broker.enqueue([Outgoing("a", "q", b"")])
    finally:
        broker.close()
    assert (tmp_path / "relative.db").exists()


def test_an_absolute_url_opens_that_file(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/abs.db")
    broker.close()

    assert (tmp_path / "abs.db").exists()


def test_a_file_that_is_not_a_database_is_a_broker_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)

    with pytest.raises(BrokerError, match=re.escape(str(path))) as caught:
        SQLiteBroker(f"sqlite:///{path}")
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_a_full_disk_is_a_broker_error_naming_the_file_and_stores_nothing(
    tmp_path: Path,
) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/full.db")
    try:
        # A page limit on this thread's connection stands in for a full disk.
        broker._conn().execute("PRAGMA max_page_count = 20")
        with pytest.raises(BrokerError, match=r"full\.db.*disk is full") as caught:
            broker.enqueue([Outgoing(f"m{i}", "q", b"x" * 4000) for i in range(50)])
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert broker.stats() == {}
    finally:
        broker.close()


def test_two_brokers_on_one_file_share_the_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = SQLiteBroker(url), SQLiteBroker(url)
    try:
        first.enqueue([Outgoing("a", "q", b"")])
        assert [d.id for d in second.reserve(["q"], 1, lease_s=30, wait_s=0)] == ["a"]
    finally:
        first.close()
        second.close()


def test_a_closed_broker_refuses_to_work(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/closed.db")
    broker.close()

    with pytest.raises(BrokerError):
        broker.stats()


def fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (pytest-timeout's).
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def run_in_child(body: Callable[[], bool]) -> int:
    """Fork, run ``body()`` in the child, and return the child's exit status."""
    pid = fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_broker_used_before_fork_works_in_the_child_and_still_in_the_parent(
    tmp_path: Path,
) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/fork.db")
    try:
        broker.enqueue([Outgoing("child", "q", b"c"), Outgoing("parent", "q", b"p")])
        broker.stats()  # the parent's connection is open and used when the child forks

        def child() -> bool:
            (delivery,) = broker.reserve(["q"], 1, lease_s=30, wait_s=0)
            done = delivery.id == "child" and broker.ack([delivery]) == [True]
            broker.close()  # closes the child's own connection, not the parent's
            return done

        assert run_in_child(child) == 0
        (delivery,) = broker.reserve(["q"], 1, lease_s=30, wait_s=0)
        assert delivery.id == "parent"
        assert broker.ack([delivery]) == [True]
        assert broker.stats() == {}
    finally:
        broker.close()


def test_a_child_that_closes_an_unused_broker_leaves_the_parent_working(
    tmp_path: Path,
) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/fork.db")
    try:
        broker.enqueue([Outgoing("a", "q", b"")])

        def child() -> bool:
            broker.close()
            return True

        assert run_in_child(child) == 0
        assert [d.id for d in broker.reserve(["q"], 1, lease_s=30, wait_s=0)] == ["a"]
    finally:
        broker.close()


def test_a_database_from_a_newer_taskmill_is_a_broker_error(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()

    with pytest.raises(BrokerError, match="schema version 99"):
        SQLiteBroker(f"sqlite:///{path}")
