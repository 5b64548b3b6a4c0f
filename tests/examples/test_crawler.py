"""The crawler example against its local website: every page's outcome, the retries and
their backoff, and the per-host limit, as the website saw them."""

from __future__ import annotations

import itertools

import pytest

from taskmill.examples.crawler.site import KINDS

#: how a page of each kind ends: fetched, not found, or failed after its retries
OUTCOMES = {
    "page": "200",
    "slow": "200",
    "flaky": "200",
    "stall": "200",
    "missing": "404",
    "broken": "failed",
}
#: requests a page of each kind needs: flaky answers 503 twice, stall hangs once,
#: broken fails every attempt (the task has 3 retries)
REQUESTS = {"page": 1, "slow": 1, "missing": 1, "flaky": 3, "stall": 2, "broken": 4}


@pytest.mark.timeout(120)
def test_every_page_ends_as_it_should_with_retries_and_never_over_the_host_limit(example, tmp_path):
    report = example("crawler").run(
        tmp_path, concurrency=1, progress=False, pages=6, async_limit=50
    )

    outcomes, hits = report.details["outcomes"], report.details["hits"]
    assert len(outcomes) == 3 * (6 + len(KINDS) - 1)  # 6 good pages, one of each other kind
    for url, outcome in outcomes.items():
        kind = url.split("/")[3]
        assert outcome == OUTCOMES[kind], url
        # at least: on a busy machine even a good page may time out once and be retried
        assert hits[url] >= REQUESTS[kind], url
        if kind == "broken":
            assert hits[url] == REQUESTS[kind], url  # and no more: its retries ran out
    assert set(hits) == set(outcomes)
    errors = report.details["errors"]
    assert sorted(errors) == sorted(url for url in outcomes if "/broken/" in url)
    assert all(e.startswith("ServerError: ") and "HTTP 500" in e for e in errors.values())

    # retries waited their backoff: 0.2 s doubling, jittered down to half of it at least
    for url, arrivals in report.details["arrivals"].items():
        if "/broken/" in url:
            gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
            assert [gap >= 0.1 * 2**n for n, gap in enumerate(gaps)] == [True] * 3, gaps

    peaks = report.details["peak"]
    assert len(peaks) == 3
    assert max(peaks.values()) <= report.details["limit"] == 4
    assert max(peaks.values()) >= 2  # requests to a host did run side by side
