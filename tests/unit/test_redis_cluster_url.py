"""Redis Cluster URLs: the nodes and options they name, and the ones refused."""

from __future__ import annotations

import pytest

from taskmill.brokers import redact_url
from taskmill.brokers.redis_cluster import _parse_cluster_url
from taskmill.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "nodes", "options"),
    [
        (
            "redis+cluster://10.0.0.1:7000",
            [("10.0.0.1", 7000)],
            {"prefix": "taskmill", "ssl": False, "reconnect_s": 20.0, "socket_timeout": 30.0},
        ),
        (
            "redis+cluster://a:7000,b:7001/?prefix=app&reconnect_s=5&socket_timeout=4",
            [("a", 7000), ("b", 7001)],
            {"prefix": "app", "ssl": False, "reconnect_s": 5.0, "socket_timeout": 4.0},
        ),
        (
            "rediss+cluster://user:p%40ss@[::1]:7000/",
            [("::1", 7000)],
            {"ssl": True, "username": "user", "password": "p@ss"},
        ),
    ],
)
def test_a_cluster_url_names_its_nodes_and_options(url, nodes, options):
    found_nodes, found = _parse_cluster_url(url, url)

    assert [(n.host, n.port) for n in found_nodes] == nodes
    assert options.items() <= found.items()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://a:7000/2", "no databases"),
        ("redis+cluster://a:7000/?db=2", "unknown parameters"),
        ("redis+cluster://a", "expected host:port"),
        ("redis+cluster://", "no cluster node"),
        ("redis+cluster://a:7000/?reconnect_s=soon", "must be a number"),
    ],
)
def test_a_bad_cluster_url_is_a_configuration_error(url, why):
    with pytest.raises(ConfigurationError, match=why):
        _parse_cluster_url(url, url)


def test_a_cluster_url_shows_no_password():
    assert redact_url("redis+cluster://u:secret@a:7000,b:7001/?prefix=x") == (
        "redis+cluster://u:***@a:7000,b:7001/?prefix=x"
    )
