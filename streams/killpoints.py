"""Test-only crash points, for the crash-search test (tests/integration/test_crash_search.py).

``CCMON_TEST_KILL_AT=POINT:N`` makes the worker SIGKILL itself the N-th time it passes POINT, so a
test can place a crash exactly where a race would need luck to hit: between the facts send and
the state write, before an offset commit, during recovery, right after a rebalance. Unset (the
default, and the only setting for production) every point is a no-op. Not a ``Settings`` field on
purpose: it is not configuration, and it is read once, here.
"""

from __future__ import annotations

import os
import signal
import sys

#: where a kill can be placed, in the order a batch passes them
POINTS = (
    "lifecycle-batch",  #: a stage-1 batch processed, its facts handed to the producer
    "facts-acked",  #: the broker has a stage-1 batch's facts; its state is not written yet
    "state-queued",  #: a stage-1 batch's state is queued for the broker, not yet acknowledged
    "queues-batch",  #: a stage-2 batch applied, its records queued for the changelog
    "sweep",  #: a timer sweep sent what it made due
    "commit",  #: state written and flushed, offsets about to be committed
    "committed",  #: offsets committed
    "assigned",  #: partitions assigned, recovery starting
    "recovered",  #: recovery complete, before the first batch of the new assignment
)


def _parse(spec: str) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, n = spec.partition(":")
    if point not in POINTS or not n.isdigit() or int(n) < 1:
        sys.exit(f"ccmon: CCMON_TEST_KILL_AT={spec!r}: want POINT:N with N >= 1 and POINT one of {', '.join(POINTS)}")
    return point, int(n)


_target = _parse(os.environ.get("CCMON_TEST_KILL_AT", ""))
_count = 0


def reached(point: str) -> None:
    """Called at each point; kills this process (SIGKILL: nothing is flushed) at the chosen one."""
    global _count
    if _target is None or point != _target[0]:
        return
    _count += 1
    if _count >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
