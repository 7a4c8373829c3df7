"""Snapshot files (streams/faust_ext/snapshot.py): what is written is read back whole, and anything else, a
missing, truncated, corrupted, foreign or half-written file, reads as "no snapshot", so that the
worker recovers from the whole changelog. Restoring from one on a real broker:
tests/integration/test_snapshot_recovery.py."""

from __future__ import annotations

import os
from pathlib import Path

from streams.faust_ext.snapshot import Origin, encode, foreign, header_of, read, vet, write
from streams.kafka.identity import ClusterView, TopicView

TOPIC = "app-ccmon-lifecycle-changelog"
DATA = {
    "c|voice|x1": [1, "sales", None, 12.5],
    "m|cc.calls|0": [1_795_420_000.0],
    "g|a-1": {"p": 2, "s": "busy"},
}
OFFSETS = {0: 41, 1: None, 2: 7}
ORIGIN = Origin("Xq3v1cY9QbGk2n0aZ8pT1w", "b6a0c4c2-2f0e-4a5e-9d7e-1b0b3e4c5d6f")


def test_written_snapshot_reads_back_whole(tmp_path: Path):
    path = tmp_path / "s" / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA, ORIGIN))
    snap = read(path, TOPIC)
    assert snap is not None and snap.topic == TOPIC and snap.offsets == OFFSETS and snap.data == DATA
    assert [p.name for p in path.parent.iterdir()] == ["t.snap"]  # no temporary file left behind


def test_replacing_a_snapshot_is_atomic(tmp_path: Path):
    path = tmp_path / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA, ORIGIN))
    inode = path.stat().st_ino
    write(path, encode(TOPIC, {0: 50, 1: 3, 2: 9}, {**DATA, "c|chat|y": [2]}, ORIGIN))
    assert path.stat().st_ino != inode  # renamed over, never rewritten in place
    snapshot = read(path, TOPIC)
    assert snapshot is not None and snapshot.offsets == {0: 50, 1: 3, 2: 9}


def test_missing_snapshot_is_none(tmp_path: Path):
    assert read(tmp_path / "nothing.snap", TOPIC) is None


def test_corrupt_truncated_or_foreign_snapshots_are_ignored(tmp_path: Path, caplog):
    good = encode(TOPIC, OFFSETS, DATA, ORIGIN)
    flipped = bytearray(good)
    flipped[-5] ^= 0x20  # one bit of the body: still JSON, but not what was written
    cases = {
        "flipped": bytes(flipped),
        "truncated": good[:-10],
        "empty": b"",
        "garbage": os.urandom(200),
        "header only": good[: good.index(b"\n", 20) + 1],
        "other table": encode("other-changelog", OFFSETS, DATA, ORIGIN),
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.snap"
        path.write_bytes(blob)
        assert read(path, TOPIC) is None, name
    assert "checksum mismatch" in caplog.text and "not 'app-ccmon-lifecycle-changelog'" in caplog.text


def the_cluster(
    cluster_id: str | None = ORIGIN.cluster_id, topic_id: str | None = ORIGIN.topic_id, **ends: int
):
    """What Kafka says now: the snapshot's own cluster and changelog, its end offsets past OFFSETS'."""
    end = {0: 42, 1: 0, 2: 8} | {int(p[1:]): o for p, o in ends.items()}
    return ClusterView(cluster_id, {TOPIC: TopicView(topic_id, end)})


def test_a_snapshot_is_kept_only_on_the_cluster_and_changelog_it_was_taken_from(tmp_path: Path):
    path = tmp_path / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA, ORIGIN))
    header = header_of(path)
    assert header is not None
    assert foreign(header, the_cluster()) is None  # its own: kept
    assert foreign(header, the_cluster(p0=1000)) is None  # the changelog went on since: kept
    cases = {
        "another cluster": (the_cluster(cluster_id="new-cluster"), "of Kafka cluster Xq3v1cY9QbGk2n0aZ8pT1w"),
        "topic recreated": (the_cluster(topic_id="0d1e2f30-0000-4000-8000-000000000001"), "of an earlier"),
        "topic gone": (ClusterView(ORIGIN.cluster_id, {}), "does not exist"),
        "offset beyond the end": (the_cluster(p2=7), "beyond the end"),  # offset 7 is not there yet
        "empty changelog": (the_cluster(p0=0, p2=0), "beyond the end"),
    }
    for name, (view, why) in cases.items():
        reason = foreign(header, view)
        assert reason is not None and why in reason, (name, reason)
    older = dict(header)
    del older["cluster_id"], older["topic_id"]
    assert "older ccmon" in (foreign(older, the_cluster()) or "")


def test_a_broker_without_topic_ids_keeps_a_snapshot_taken_without_them(tmp_path: Path):
    path = tmp_path / "t.snap"
    write(path, encode(TOPIC, OFFSETS, DATA, Origin(ORIGIN.cluster_id, None)))
    header = header_of(path)
    assert header is not None
    assert foreign(header, the_cluster(topic_id=None)) is None
    assert foreign(header, the_cluster()) is not None  # ids now: it cannot be shown to be this topic


def test_vet_moves_foreign_snapshots_aside_and_leaves_the_rest(tmp_path: Path):
    folder, aside = tmp_path / "snaps", tmp_path / "snaps" / "set-aside" / "now"
    write(folder / "mine.snap", encode(TOPIC, OFFSETS, DATA, ORIGIN))
    theirs = encode(TOPIC, OFFSETS, DATA, Origin("other-cluster", ORIGIN.topic_id))
    write(folder / "theirs.snap", theirs)
    (folder / "garbage.snap").write_bytes(b"not a snapshot")  # read() ignores it; vet leaves it
    moved = vet(folder, the_cluster(), aside)
    assert list(moved) == ["theirs.snap"] and "other-cluster" in moved["theirs.snap"]
    assert sorted(p.name for p in folder.glob("*.snap")) == ["garbage.snap", "mine.snap"]
    assert (aside / "theirs.snap").read_bytes() == theirs  # moved whole, not deleted
    assert read(folder / "mine.snap", TOPIC) is not None
    assert vet(tmp_path / "none", the_cluster(), aside) == {}
