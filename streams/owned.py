"""Which queues this worker shows: those of the facts partitions assigned to it now. One rule for
/metrics (streams/metrics/kpi_exposition.py), the wallboard (streams/wallboard/queues.py) and the
worker's ownership (streams/worker/ownership.py), so the three cannot disagree; pure, no Faust."""

from __future__ import annotations

from collections.abc import Callable, Collection

from streams.core.intake import partition_for_queue

__all__ = ["owner_filter"]


def owner_filter(owned: Collection[int] | None, partitions: int) -> Callable[[str], bool]:
    """Whether a queue is this worker's to show: its facts partition is currently assigned here.
    A worker's state may still hold queues of partitions it has just lost; they are not shown.
    ``owned`` None: every queue it holds (a single worker, the tests)."""
    if owned is None:
        return lambda queue: True
    return lambda queue: partition_for_queue(queue, partitions) in owned
