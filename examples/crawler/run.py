"""Crawl a local website with ``async def`` tasks: many requests at once from one worker
child, retries with backoff, at most PER_HOST requests per host at a time.

    python -m taskmill.examples.crawler.run [--pages 12] [--async-limit 100]

Starts the local site (:mod:`.site`: three hosts with good, slow, flaky, stalling,
broken and missing pages) and a worker with one child (``-c 1``: the per-host limit is
per child), sends one ``fetch`` per URL, and checks every page's outcome, that the
flaky and stalling pages were retried, and that no host ever had more than PER_HOST
requests in progress.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from taskmill.examples import script
from taskmill.examples.crawler.site import Site
from taskmill.examples.crawler.tasks import PER_HOST, fetch
from taskmill.examples.report import Report
from taskmill.examples.workers import running_worker

LABELS = {"200": "fetched", "404": "not found", "failed": "failed after their retries"}


def outcome(result: Any) -> str:
    """``"200"``, ``"404"``…, or ``"failed"`` for a fetch that failed after its retries."""
    return "failed" if isinstance(result, BaseException) else str(result["status"])


def run(
    folder: Path,
    concurrency: int = 1,
    progress: bool = True,
    pages: int = 12,
    async_limit: int = 100,
) -> Report:
    options = ["--async-limit", str(async_limit)]
    with Site() as site:
        urls = site.urls(pages)
        log = folder / "worker.log"
        with running_worker("taskmill.examples.crawler.tasks", log, concurrency, options):
            begun = time.perf_counter()
            results = fetch.map(urls, chunksize=1).get(
                timeout=120, propagate=False, progress=progress
            )
            seconds = time.perf_counter() - begun
    outcomes = {url: outcome(result) for url, result in zip(urls, results, strict=True)}
    wrong = {url: got for url, got in outcomes.items() if got != site.expected(url)}
    assert not wrong, f"unexpected outcomes: {wrong}"
    over = {host: peak for host, peak in site.peak.items() if peak > PER_HOST * concurrency}
    assert not over, f"more than {PER_HOST * concurrency} requests at once: {over}"
    retried = {url: hits - 1 for url, hits in site.hits.items() if hits > 1}
    tally = Counter(LABELS.get(got, f"HTTP {got}") for got in outcomes.values())
    return Report(
        "crawler",
        seconds,
        lines=[
            f"{len(urls)} URLs on {len(site.hosts)} hosts: "
            + ", ".join(f"{count} {what}" for what, count in tally.most_common()),
            f"{site.requests} requests, {sum(retried.values())} of them retries "
            f"(flaky, stalling and broken pages)",
            f"most requests at once per host: {max(site.peak.values())} "
            f"(limit {PER_HOST} per worker child, {concurrency} child)",
        ],
        details={
            "outcomes": outcomes,
            "errors": {
                url: f"{type(result).__name__}: {result}"
                for url, result in zip(urls, results, strict=True)
                if isinstance(result, BaseException)
            },
            "hits": dict(site.hits),
            "arrivals": dict(site.arrivals),
            "peak": dict(site.peak),
            "limit": PER_HOST * concurrency,
        },
    )


def main(argv: list[str] | None = None) -> int:
    arguments = script.parser("crawler", __doc__)
    arguments.set_defaults(concurrency=1)
    arguments.add_argument("--pages", type=int, default=12, help="good pages per host")
    arguments.add_argument(
        "--async-limit", type=int, default=100, help="fetches in flight per worker child"
    )
    return script.main(run, arguments, argv)


if __name__ == "__main__":
    raise SystemExit(main())
