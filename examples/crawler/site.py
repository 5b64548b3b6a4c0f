"""A local website to crawl: several hosts on the loopback range, pages that behave well
and pages that don't, and a count of the requests each host has in progress.

::

    http://127.0.0.1:PORT1/  http://127.0.0.2:PORT2/  http://127.0.0.3:PORT3/
      one ThreadingHTTPServer per host, in threads of this process; every host serves:

      /page/N     200 after LATENCY seconds    /slow/N     200 after DELAY seconds
      /flaky/N    503 FLAKY times, then 200    /stall/N    first request hangs, then 200
      /broken/N   500, always                  /missing/N  404, always

The crawler example needs no internet: it crawls this. Each host counts the requests it
is handling, per ``Host`` header, and remembers the most at once (``peak``), so a test
can check a per-host limit; and when each request for each URL arrived (``arrivals``), to
see the backoff between retries. A request counts from when its headers are read until its
answer is about to be sent (or, for a hung one, until the client hangs up): never longer
than the client waits for it.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["KINDS", "Site"]

#: what each kind of page ends as, for a crawler that retries 5xx answers and timeouts
KINDS = {
    "page": "200",
    "slow": "200",
    "flaky": "200",
    "stall": "200",
    "broken": "failed",
    "missing": "404",
}


class Site:
    """The website: ``with Site() as site: site.urls(3)``.

    ``latency``: seconds every answer takes, as from a real server. ``delay``: seconds a
    slow page takes. ``flaky``: how many 503 answers a flaky page gives before its 200.
    ``stall``: how long the first request for a stalling page hangs (longer than the
    crawler's timeout), unless the client hangs up first.
    """

    def __init__(
        self,
        hosts: tuple[str, ...] = ("127.0.0.1", "127.0.0.2", "127.0.0.3"),
        latency: float = 0.05,
        delay: float = 0.3,
        flaky: int = 2,
        stall: float = 10.0,
    ) -> None:
        self.latency = latency
        self.delay = delay
        self.flaky = flaky
        self.stall = stall
        self.hits: Counter[str] = Counter()  # requests per URL
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)  # monotonic, per URL
        self.in_progress: Counter[str] = Counter()  # per Host header
        self.peak: Counter[str] = Counter()  # the most in progress at once, per Host header
        self._lock = threading.Lock()
        self._servers = [_Server((host, 0), _Handler, self) for host in hosts]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Site:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()

    @property
    def hosts(self) -> list[str]:
        """``host:port`` of each host, as a Host header names it."""
        return [
            f"{server.server_address[0]}:{server.server_address[1]}" for server in self._servers
        ]

    def urls(self, pages: int) -> list[str]:
        """``pages`` good pages per host, and one page of every other kind per host."""
        found = []
        for host in self.hosts:
            found += [f"http://{host}/page/{n}" for n in range(pages)]
            found += [f"http://{host}/{kind}/0" for kind in KINDS if kind != "page"]
        return found

    @staticmethod
    def expected(url: str) -> str:
        """What a crawl of ``url`` should end as: ``"200"``, ``"404"`` or ``"failed"``."""
        return KINDS[url.split("/")[3]]

    @property
    def requests(self) -> int:
        """Requests answered or hung up on, all hosts together."""
        with self._lock:
            return sum(self.hits.values())

    # -- for the handler ----------------------------------------------------------------

    def begin(self, host: str, url: str) -> int:
        """A request arrived; returns how many times ``url`` was asked for, this one too."""
        with self._lock:
            self.hits[url] += 1
            self.arrivals[url].append(time.monotonic())
            self.in_progress[host] += 1
            self.peak[host] = max(self.peak[host], self.in_progress[host])
            return self.hits[url]

    def end(self, host: str) -> None:
        with self._lock:
            self.in_progress[host] -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[_Handler], site: Site) -> None:
        super().__init__(address, handler)
        self.site = site

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up on a stalling page: expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        site = self.server.site
        host = self.headers.get("Host", "")
        kind = self.path.split("/")[1] if self.path.count("/") >= 2 else ""
        times = site.begin(host, f"http://{host}{self.path}")
        ended = False
        try:
            if kind == "stall" and times == 1:
                self._hang(site.stall)
                return
            time.sleep(site.delay if kind == "slow" else site.latency)
            status = _status(kind, times, site.flaky)
            site.end(host)
            ended = True
            self._answer(status, f"{kind} {self.path.split('/')[-1]}")
        finally:
            if not ended:
                site.end(host)

    def _hang(self, seconds: float) -> None:
        """Answer nothing for ``seconds``, or until the client hangs up."""
        with contextlib.suppress(OSError):
            select.select([self.connection], [], [], seconds)
        self.close_connection = True

    def _answer(self, status: int, title: str) -> None:
        body = f"<html><head><title>{title}</title></head><body>{status}</body></html>"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the crawler reports what happened


def _status(kind: str, times: int, flaky: int) -> int:
    """The answer to the ``times``-th request for a page of this kind."""
    if kind in ("page", "slow", "stall"):
        return 200
    if kind == "flaky":
        return 503 if times <= flaky else 200
    if kind == "broken":
        return 500
    return 404
