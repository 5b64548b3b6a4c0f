"""The states a task's result moves through.

::

    UNKNOWN ──(enqueue)──▶ PENDING ──(reserved)──▶ STARTED ──▶ SUCCESS | FAILURE
                              ▲                       │
                              └──── RETRY ◀───────────┘          REVOKED (before it ran)

PENDING, STARTED and RETRY are derived from the message while it is in the broker;
the final states are stored results, and the first final result stored for an id wins.
UNKNOWN means the broker has neither a message nor a result for the id: never sent,
forgotten, or its result expired.
"""

from __future__ import annotations

from typing import Final

UNKNOWN: Final = "UNKNOWN"
PENDING: Final = "PENDING"
STARTED: Final = "STARTED"
RETRY: Final = "RETRY"
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
REVOKED: Final = "REVOKED"

FINAL_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED})
ALL_STATES: Final = frozenset({UNKNOWN, PENDING, STARTED, RETRY}) | FINAL_STATES
