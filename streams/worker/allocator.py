"""Hands the C allocator's free memory back to the system, so that a worker's RSS follows its state.

glibc's malloc keeps what Python frees in its heap for reuse and gives back only the heap's top.
Large short-lived buffers (``/metrics`` bodies, snapshot blobs, changelog batches) are freed
between long-lived blocks (the tables' growing dicts), and that free space stays resident: with
100,000 contacts open, a worker held about 1.1 KiB of free heap per contact, more than the
contacts themselves (docs/performance-history.md, "RSS per open contact"). ``malloc_trim(0)`` returns
every free page, inside the heap too. A C library without it (musl, macOS) has nothing to call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["release"]


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release() -> bool:
    """Return the allocator's free pages to the system (a few ms for a heap of 100 MiB, without the
    GIL); False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
