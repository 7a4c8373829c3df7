"""Snapshot files (streams/faust_ext/snapshot.py): what is written is read back whole, and anything else, a
missing, truncated, corrupted, foreign or half-written file, reads as "no snapshot", so that the
worker recovers from the whole changelog. Restoring from one on a real broker:
tests/integration/test_snapshot_recovery.py."""

from __future__ import annotations

import os
from pathlib import Path

from streams.faust_ext.snapshot import encode, read, write

TOPIC = "app-ccmon-lifecycle-changelog"
DATA = {
    "c|voice|x1": [1, "sales", None, 12.5],
    "m|cc.calls|0": [1_795_420_000.0],
    "g|a-1": {"p": 2, "s": "busy"},
}
OFFSETS = {0: 41, 1: None, 2: 7}


def test_written_snapshot_reads_back_whole(tmp_path: Path):
    path = tmp_path / "s" / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA))
    snap = read(path, TOPIC)
    assert snap is not None and snap.topic == TOPIC and snap.offsets == OFFSETS and snap.data == DATA
    assert [p.name for p in path.parent.iterdir()] == ["t.snap"]  # no temporary file left behind


def test_replacing_a_snapshot_is_atomic(tmp_path: Path):
    path = tmp_path / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA))
    inode = path.stat().st_ino
    write(path, encode(TOPIC, {0: 50, 1: 3, 2: 9}, {**DATA, "c|chat|y": [2]}))
    assert path.stat().st_ino != inode  # renamed over, never rewritten in place
    snapshot = read(path, TOPIC)
    assert snapshot is not None and snapshot.offsets == {0: 50, 1: 3, 2: 9}


def test_missing_snapshot_is_none(tmp_path: Path):
    assert read(tmp_path / "nothing.snap", TOPIC) is None


def test_corrupt_truncated_or_foreign_snapshots_are_ignored(tmp_path: Path, caplog):
    good = encode(TOPIC, OFFSETS, DATA)
    flipped = bytearray(good)
    flipped[-5] ^= 0x20  # one bit of the body: still JSON, but not what was written
    cases = {
        "flipped": bytes(flipped),
        "truncated": good[:-10],
        "empty": b"",
        "garbage": os.urandom(200),
        "header only": good[: good.index(b"\n", 20) + 1],
        "other table": encode("other-changelog", OFFSETS, DATA),
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.snap"
        path.write_bytes(blob)
        assert read(path, TOPIC) is None, name
    assert "checksum mismatch" in caplog.text and "not 'app-ccmon-lifecycle-changelog'" in caplog.text
