"""Python's cyclic garbage collector, set for a process whose heap is mostly long-lived state.

A worker holds its tables in memory: hundreds of thousands of dicts and lists that live for
hours and never form reference cycles (JSON-shaped records, freed by reference counting). With
CPython's default thresholds (700, 10, 10) the collector still walks all of them in a full
collection every 2-3 s under live load: 50-100 ms with the loop stopped, 16 times in a 40-s
latency phase at 2,000 events/s, each collecting nothing (issue 27; docs/performance.md). A
larger first threshold lets most of a batch's temporaries die by reference count before a
collection sees them, so far fewer survive into the older generations, and the third threshold
makes a full walk wait for 100 collections of the middle one: 1 full collection in the same
phase. Cycles (asyncio's, the Kafka client's) are still found, in the young generations within
about 50,000 allocations, or at the next full walk.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["THRESHOLDS", "tune"]

#: (young, middle, full): allocations before a young collection; young collections before a
#: middle one; middle ones before a full walk of every object (CPython's are 700, 10, 10)
THRESHOLDS: Final = (50_000, 20, 100)


def tune() -> None:
    """Set the worker's thresholds (once, at its start)."""
    gc.set_threshold(*THRESHOLDS)
