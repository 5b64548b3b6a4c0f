"""The ``broker`` fixture: every contract test runs once per broker.

Each store is a context manager that yields the URL of a fresh, empty broker and cleans
up afterwards. Tests get an open broker (``broker``); tests that need more clients, in
this process or in child processes, open them from ``broker_url``.

A store that cannot run here skips. A test that some broker cannot pass yet is marked
``@pytest.mark.brokers("sqlite", ...)`` with the brokers that run it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from taskmill.brokers import open_broker
from taskmill.brokers.base import Broker


@contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'broker.db'}"


@contextmanager
def redis_store(tmp_path: Path) -> Iterator[str]:
    try:
        importlib.import_module("taskmill.brokers.redis")
    except ImportError:
        pytest.skip("Redis broker not built yet")
    # The Redis broker's author plugs in here: yield a URL with a key prefix unique to
    # this test on redis://127.0.0.1:6379/15, and delete the prefix's keys afterwards.
    pytest.skip("Redis contract store not wired yet")
    yield ""


STORES: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    "sqlite": sqlite_store,
    "redis": redis_store,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "brokers(*names): run only with these brokers")


@pytest.fixture(params=sorted(STORES))
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    marker = request.node.get_closest_marker("brokers")
    if marker is not None and request.param not in marker.args:
        pytest.skip(f"not run with the {request.param} broker yet")
    with STORES[request.param](tmp_path) as url:
        yield url


@pytest.fixture
def open_client(broker_url: str) -> Iterator[Callable[[], Broker]]:
    """Opens more brokers on the same store; each is closed after the test."""
    opened: list[Broker] = []

    def open_one() -> Broker:
        opened.append(open_broker(broker_url))
        return opened[-1]

    yield open_one
    for broker in opened:
        broker.close()


@pytest.fixture
def broker(open_client: Callable[[], Broker]) -> Broker:
    return open_client()
