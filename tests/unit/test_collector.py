"""The worker's garbage-collector thresholds (streams/worker/collector.py): set at its start, and
still collecting reference cycles (in a young generation, without a full walk)."""

from __future__ import annotations

import gc

from streams.worker import collector


def test_tune_sets_the_thresholds_and_cycles_are_still_collected():
    before = gc.get_threshold()
    try:
        collector.tune()
        assert gc.get_threshold() == collector.THRESHOLDS
        gc.collect()
        freed: list[int] = []

        def watch(phase: str, info: dict) -> None:
            if phase == "stop" and info["collected"]:
                freed.append(info["generation"])

        class Node:
            def __init__(self) -> None:
                self.other: Node | None = None

        gc.callbacks.append(watch)
        try:
            for _ in range(collector.THRESHOLDS[0] * 2):  # garbage cycles, allocated past the threshold
                a, b = Node(), Node()
                a.other, b.other = b, a
        finally:
            gc.callbacks.remove(watch)
        assert freed and 2 not in freed  # found by young collections, not full walks
    finally:
        gc.set_threshold(*before)
