"""A consumer process for the cross-process contract test (run as a script, not collected).

Usage: ``python drain_child.py URL MAX_COUNT``. Prints ``ready``, waits for a line on
stdin (so every child starts draining at once), then reserves, "runs" and acknowledges
until the queue stays empty, printing each id it acknowledged. Exits 3 if an ack was refused.
"""

from __future__ import annotations

import sys
import time

from taskmill.brokers import open_broker


def main(url: str, max_count: int) -> int:
    broker = open_broker(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        while deliveries := broker.reserve(["q"], max_count, lease_s=60, wait_s=0.5):
            time.sleep(0.001)  # runs the tasks: the others get their turn meanwhile
            if not all(broker.ack(deliveries)):
                return 3
            print("\n".join(d.id for d in deliveries), flush=True)
        return 0
    finally:
        broker.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
