"""Test-only crash and pause points, for the crash tests (tests/integration/test_crash_search.py,
test_recovery_race.py). Here and not in streams/dev/, because the worker's own code calls them
(production code imports nothing of streams/dev/: tests/unit/test_dependencies.py).

``CCMON_TEST_KILL_AT=POINT:N`` makes the worker SIGKILL itself the N-th time it passes POINT, so a
test can place a crash exactly where a race would need luck to hit: between the facts send and
the state write, before an offset commit, during recovery, right after a rebalance. Unset (the
default, and the only setting for production) every point is a no-op. Not a ``Settings`` field on
purpose: it is not configuration, and it is read once, here.

``CCMON_TEST_PAUSE_AT=POINT:SECONDS`` holds the worker that long the first time it passes POINT,
and the agents' batches with it (they wait in ``hold``), so that messages pile up in the streams'
queues: a race that needs a slow moment happens every time.
"""

from __future__ import annotations

import asyncio
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
#: where a pause can be placed
PAUSES = (
    "seeked",  #: recovery ending: stream partitions resumed and sought, the streams' queues not yet emptied
)


def _parse(spec: str) -> tuple[str, int] | None:
    if not spec:
        return None
    point, _, n = spec.partition(":")
    if point not in POINTS or not n.isdigit() or int(n) < 1:
        sys.exit(
            f"ccmon: CCMON_TEST_KILL_AT={spec!r}: want POINT:N with N >= 1 "
            f"and POINT one of {', '.join(POINTS)}"
        )
    return point, int(n)


def _parse_pause(spec: str) -> tuple[str, float] | None:
    if not spec:
        return None
    point, _, seconds = spec.partition(":")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if point not in PAUSES or not value > 0:
        sys.exit(
            f"ccmon: CCMON_TEST_PAUSE_AT={spec!r}: want POINT:SECONDS with SECONDS > 0 and POINT one of "
            f"{', '.join(PAUSES)}"
        )
    return point, value


_target = _parse(os.environ.get("CCMON_TEST_KILL_AT", ""))
_count = 0
_pause = _parse_pause(os.environ.get("CCMON_TEST_PAUSE_AT", ""))
_paused: asyncio.Event | None = None  #: set while a pause runs


def reached(point: str) -> None:
    """Called at each point; kills this process (SIGKILL: nothing is flushed) at the chosen one."""
    global _count
    if _target is None or point != _target[0]:
        return
    _count += 1
    if _count >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


async def pause(point: str) -> None:
    """Called at each pause point; the first time at the chosen one, holds it (and ``hold``)."""
    global _pause, _paused
    if _pause is None or point != _pause[0]:
        return
    seconds, _pause = _pause[1], None
    _paused = asyncio.Event()
    try:
        await asyncio.sleep(seconds)
    finally:
        _paused.set()


async def hold() -> None:
    """Awaited by the agents before each batch: waits while a pause runs."""
    if _paused is not None and not _paused.is_set():
        await _paused.wait()
