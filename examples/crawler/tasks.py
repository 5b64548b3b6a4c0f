"""Fetching pages with an ``async def`` task: httpx's AsyncClient, retries with backoff on
5xx answers and timeouts, and a limit on concurrent requests per host.

::

    worker child (one event loop; up to --async-limit fetches in flight)
      fetch(url) ─▶ per-host semaphore (PER_HOST) ─▶ GET url (TIMEOUT)
                      5xx or timeout ─▶ raise ─▶ taskmill retries it later, with backoff
                      anything else  ─▶ {"url", "status", "bytes", "title"}

The per-host semaphores live in the worker child, on its event loop: the limit is per
child. The crawler runs its worker with one child (``-c 1``), as suits I/O work: one
event loop has many requests in flight, and the limit holds for the whole crawl. With
``-c N`` a host could see N times PER_HOST requests at once.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import weakref
from collections import defaultdict
from typing import Any

import httpx

from taskmill import App

app = App("crawler")

#: concurrent requests per host, in each worker child
PER_HOST = 4
#: seconds a request may take (connect, each read) before it counts as timed out
TIMEOUT = 1.0

_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
#: made once per process: a new TLS context per request would cost more than the request
_TLS = ssl.create_default_context()
#: each event loop's per-host semaphores (a semaphore belongs to one event loop)
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, defaultdict[str, asyncio.Semaphore]]
_limits = weakref.WeakKeyDictionary()


class ServerError(Exception):
    """The server answered 5xx: it may do better later, so the task is retried."""


def host_limit(host: str) -> asyncio.Semaphore:
    """The semaphore that keeps this event loop's requests to ``host`` within PER_HOST."""
    loop = asyncio.get_running_loop()
    if loop not in _limits:
        _limits[loop] = defaultdict(lambda: asyncio.Semaphore(PER_HOST))
    return _limits[loop][host]


@app.task(
    retries=3,
    retry_backoff=0.2,
    retry_backoff_max=2.0,
    autoretry_for=(ServerError, httpx.TimeoutException),
)
async def fetch(url: str) -> dict[str, Any]:
    """GET ``url``; its status, size and title. 5xx answers and timeouts are retried."""
    # the semaphore first: a request that timed out has closed its connection before
    # the next request to that host may start
    async with (
        host_limit(httpx.URL(url).netloc.decode()),
        httpx.AsyncClient(timeout=TIMEOUT, verify=_TLS) as client,
    ):
        response = await client.get(url)
    if response.status_code >= 500:
        raise ServerError(f"{url}: HTTP {response.status_code}")
    title = _TITLE.search(response.text)
    return {
        "url": url,
        "status": response.status_code,
        "bytes": len(response.content),
        "title": title.group(1).strip() if title else "",
    }
