"""Fast recovery (streams/faust_ext/snapshot.py) changes nothing but the time it takes: a worker that starts
from its local snapshot plus the changelog written after it, one whose snapshot is corrupt and
one whose snapshot is gone (both read the whole changelog) all end with exactly the KPIs of a
worker that never stopped, every series. Killed with SIGKILL each time, on the real broker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.support import (
    Env,
    Worker,
    record_flat,
    reference_worker,
    replay_lines,
    state_series,
    total_events,
)

pytestmark = pytest.mark.integration

TABLES = 3  # lifecycle, queues, agents: one snapshot each


def same_as(worker: Worker, reference: Worker, n_ref: int) -> dict:
    """Waits until the reference has all ``n_ref`` events and ``worker`` shows exactly its series."""
    reference.wait_settled(lambda m: total_events(m) == n_ref, timeout=300, what="the reference")
    deadline = time.monotonic() + 120
    while True:  # a moment apart, a 10 s bucket boundary may fall between two scrapes
        a, b = state_series(worker.scrape()), state_series(reference.scrape())
        if a == b or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    diff = sorted((k[0], sorted(k[1]), a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k))
    assert not diff, f"{len(diff)} series differ, e.g. {diff[:8]}\n" + worker.log.read_text()[-3000:]
    return b


def test_snapshot_plus_tail_corrupt_and_lost_snapshots_restore_the_same_state(
    env: Env, workers: list[Worker], tmp_path: Path
):
    recording = tmp_path / "all.jsonl"
    lines = record_flat(env, recording, 11, 5400, 6, "--staff", "6")
    half = len(lines) // 2
    snaps = env.tmp / "worker" / "snapshots" / env.prefix
    fast = {"CCMON_SESSION_TIMEOUT_S": "6", "CCMON_LOG_LEVEL": "info"}
    reference = reference_worker(env, CCMON_SNAPSHOT_INTERVAL_S="0")
    workers.append(reference)

    # 1. the first half, snapshotted every second
    first = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="1", **fast)
    workers.append(first)
    replay_lines(env, lines[:half], tmp_path / "first.jsonl")
    same_as(first, reference, half)
    settled = time.time()
    deadline = time.monotonic() + 60
    while not (
        len(list(snaps.glob("*.snap"))) == TABLES
        and all(f.stat().st_mtime > settled for f in snaps.glob("*.snap"))
    ):
        assert time.monotonic() < deadline, f"no snapshots in {snaps}:\n" + first.log.read_text()[-2000:]
        time.sleep(0.2)
    first.stop(signal.SIGKILL)
    snapshot_bytes = {f.name: f.read_bytes() for f in snaps.glob("*.snap")}

    # 2. starts from that snapshot, works through the second half and writes no snapshot of its own
    second = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="3600", **fast)
    workers.append(second)
    replay_lines(env, lines[half:], tmp_path / "second.jsonl")
    full = same_as(second, reference, len(lines))
    assert second.log.read_text().count("from snapshot") == TABLES, second.log.read_text()[-3000:]
    second.stop(signal.SIGKILL)
    assert {f.name: f.read_bytes() for f in snaps.glob("*.snap")} == snapshot_bytes  # still the first half's

    # 3. the first half's snapshot plus the changelog tail the second worker wrote: the whole day
    third = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="3600", **fast)
    workers.append(third)
    same_as(third, reference, len(lines))
    assert third.log.read_text().count("from snapshot") == TABLES, third.log.read_text()[-3000:]
    third.stop(signal.SIGKILL)

    # 4. a corrupt snapshot (one flipped byte) is ignored: the whole changelog, the same state
    lifecycle = snaps / "ccmon-lifecycle.snap"
    blob = bytearray(lifecycle.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    lifecycle.write_bytes(bytes(blob))
    fourth = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="3600", **fast)
    workers.append(fourth)
    same_as(fourth, reference, len(lines))
    log = fourth.log.read_text()
    assert "checksum mismatch" in log and log.count("from snapshot") == TABLES - 1, log[
        -3000:
    ]  # the others were whole
    fourth.stop(signal.SIGKILL)

    # 5. no snapshots at all: the whole changelog, the same state
    for f in snaps.glob("*.snap"):
        f.unlink()
    fifth = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="3600", **fast)
    workers.append(fifth)
    same_as(fifth, reference, len(lines))
    assert "from snapshot" not in fifth.log.read_text()
    assert len(full) > 100 and any(k[0] == "ccmon_wait_seconds_sum" for k in full)
