"""Brokers: where messages wait and results are kept. ``open_broker`` picks one by URL.

``sqlite:///path.db`` (the embedded default, no server), ``redis://`` / ``rediss://`` /
``unix://`` (many machines) and ``redis+cluster://`` / ``rediss+cluster://`` (Redis
Cluster). Every broker implements the contract in :mod:`.base`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import Broker

__all__ = ["open_broker", "redact_url"]

SCHEMES = ("sqlite", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def open_broker(url: str) -> Broker:
    """Open the broker a URL names; a URL no broker understands raises ConfigurationError."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url)
    if scheme in SCHEMES[1:]:
        try:
            from .redis import RedisBroker
            from .redis_cluster import RedisClusterBroker
        except ImportError as exc:
            raise ConfigurationError(
                f"broker URL {redact_url(url)!r} needs the Redis extra: "
                "pip install 'taskmill[redis]'"
            ) from exc
        return RedisClusterBroker(url) if scheme.endswith("+cluster") else RedisBroker(url)
    raise ConfigurationError(
        f"unsupported broker URL {redact_url(url)!r}: expected one of "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
