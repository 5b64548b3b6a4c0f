"""Retry backoff is a pure function: a table of rows says what it does."""

import pytest

from taskmill.retries import RetryPolicy, backoff_delay


@pytest.mark.parametrize(
    ("retries_done", "base", "cap", "jitter", "rand", "expected"),
    [
        (0, 1.0, 600.0, False, 0.0, 1.0),
        (1, 1.0, 600.0, False, 0.0, 2.0),
        (3, 1.0, 600.0, False, 0.0, 8.0),
        (10, 1.0, 600.0, False, 0.0, 600.0),  # capped
        (2, 0.5, 600.0, False, 0.0, 2.0),
        (0, 1.0, 600.0, True, 0.0, 0.5),  # equal jitter: never under half
        (0, 1.0, 600.0, True, 1.0, 1.0),  # ... nor over the full backoff
        (2, 1.0, 600.0, True, 0.5, 3.0),
        (10_000, 1.0, 60.0, False, 0.0, 60.0),  # huge attempt counts do not overflow
    ],
)
def test_backoff_delay(retries_done, base, cap, jitter, rand, expected):
    assert backoff_delay(retries_done, base, cap, jitter, lambda: rand) == pytest.approx(expected)


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    ("policy", "exc", "retries_done", "requested", "asked", "expected"),
    [
        (RetryPolicy(retries=0), Boom(), 0, None, True, None),  # no retries allowed
        (RetryPolicy(retries=2, jitter=False), Boom(), 0, None, True, 1.0),
        (RetryPolicy(retries=2, jitter=False), Boom(), 1, None, True, 2.0),
        (RetryPolicy(retries=2, jitter=False), Boom(), 2, None, True, None),  # spent
        (RetryPolicy(retries=2), Boom(), 0, 5.0, True, 5.0),  # Retry(delay=5)
        (RetryPolicy(retries=2), Boom(), 0, -1.0, True, 0.0),
        (RetryPolicy(retries=2), Boom(), 0, None, False, None),  # not in autoretry_for
        (RetryPolicy(retries=2, autoretry_for=(Boom,), jitter=False), Boom(), 0, None, False, 1.0),
        (RetryPolicy(retries=2, autoretry_for=(KeyError,)), Boom(), 0, None, False, None),
    ],
)
def test_retry_policy_decides(policy, exc, retries_done, requested, asked, expected):
    assert policy.retry_delay(exc, retries_done, requested, asked, lambda: 0.0) == expected
