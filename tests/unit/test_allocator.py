"""The worker gives the allocator's free memory back (streams/worker/allocator.py): freed buffers
that sit between blocks still in use stay resident until ``release``, and leave with it. Measured
on this process's own resident anonymous memory, on Linux with glibc like the image."""

from __future__ import annotations

import gc
from pathlib import Path

from streams.worker import allocator

MIB = 2**20


def resident() -> int:
    """This process's resident anonymous memory (bytes), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_freed_buffers_between_live_blocks_leave_with_release():
    allocator.release()
    # 32 KiB buffers (glibc's heap, below its mmap threshold), each followed by a small block that
    # stays: freeing the buffers leaves holes inside the heap, which free() does not give back
    buffers, kept = [], []
    for i in range(1024):
        buffers.append(bytes([i % 256]) * (32 * 1024))
        kept.append(bytes(600))
    held = resident()
    del buffers
    gc.collect()
    freed = resident()
    assert freed > held - 8 * MIB  # 32 MiB freed, still resident
    assert allocator.release() is True
    released = resident()
    assert released < freed - 24 * MIB
    assert len(kept) == 1024
