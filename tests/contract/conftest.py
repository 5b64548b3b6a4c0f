"""The ``broker`` fixture: every contract test runs once per broker.

Each store is a context manager that yields the URL of a fresh, empty broker and cleans
up afterwards: a SQLite file, a key prefix on the shared Redis server, a key prefix on a
three-master Redis Cluster started for the session (``cluster``). Tests get an open
broker (``broker``); tests that need more clients, in this process or in child processes,
open them from ``broker_url``.

A store that cannot run here skips. A test that some broker cannot pass yet is marked
``@pytest.mark.brokers("sqlite", ...)`` with the brokers that run it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from redis_cluster import delete_cluster_prefix
from redis_server import delete_prefix, redis_url_or_skip
from taskmill.brokers import open_broker
from taskmill.brokers.base import Broker


@contextmanager
def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'broker.db'}"


@contextmanager
def redis_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A key prefix unique to this test on db 15 of the shared server; its keys are
    deleted afterwards."""
    url = redis_url_or_skip(db=15)
    prefix = f"tmtest-{uuid.uuid4().hex[:12]}"
    yield f"{url}?prefix={prefix}"
    delete_prefix(url, prefix)


@contextmanager
def cluster_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A key prefix unique to this test on the session's Redis Cluster; its keys are
    deleted afterwards."""
    cluster = request.getfixturevalue("redis_cluster")
    prefix = f"tmtest-{uuid.uuid4().hex[:12]}"
    yield f"{cluster.url}?prefix={prefix}"
    delete_cluster_prefix(cluster, prefix)


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractContextManager[str]]] = {
    "sqlite": sqlite_store,
    "redis": redis_store,
    "cluster": cluster_store,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "brokers(*names): run only with these brokers")


@pytest.fixture(params=sorted(STORES))
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    marker = request.node.get_closest_marker("brokers")
    if marker is not None and request.param not in marker.args:
        pytest.skip(f"not run with the {request.param} broker yet")
    with STORES[request.param](request, tmp_path) as url:
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
