"""Local snapshots of the state tables, so that a restart reads only the changelog's tail.

The tables live in memory and their changelogs are the truth. A worker writes, per table, the
table's records together with the last changelog offset they cover on each partition it owns,
atomically (temporary file, fsync, rename), every ``CCMON_SNAPSHOT_INTERVAL_S`` after an offset
commit, at a moment when nothing it processed is still unwritten (docs/architecture.md). On start
the store loads the snapshot when it holds exactly the changelog partitions now assigned, and
tells Faust's recovery to read each changelog from the snapshot's offset on: replaying a changelog
suffix over a prefix's state gives the full changelog's state, since every message sets or
deletes one whole record. A snapshot that is missing, unreadable, corrupt (checksum), of another
table or another set of partitions is ignored, and the changelog is read from its beginning, as
without snapshots. Records are never served from a snapshot without the changelog's tail on top.

A snapshot also names the changelog it was taken from: the Kafka cluster's id and the topic's id
(a topic created again under the same name gets a new one). Before the worker starts, ``vet``
sets aside (moves, never deletes) every snapshot that does not belong to the changelog it meets:
another cluster, another incarnation of the topic, an offset beyond the topic's end. Such a
snapshot would stop the start (Faust's recovery refuses an offset beyond the end) or, worse,
put another cluster's records under this one's changelog tail.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from faust import stores
from faust.stores import memory

from streams.kafka.identity import ClusterView

log = logging.getLogger("ccmon.snapshot")

MAGIC = b"ccmon-snapshot 1\n"
#: the store of ccmon's tables (``app.Table(store=...)``), registered with Faust's store registry
STORE_URL = "ccmon-snapshot://local"  # a host: a URL with none is false, and Faust would take the app default


@dataclass(frozen=True)
class Origin:
    """The changelog a snapshot was taken from (streams/kafka/identity.py)."""

    cluster_id: str | None  #: the Kafka cluster's id
    topic_id: str | None  #: the changelog topic's id (None: the broker gives none, Kafka < 2.8)


@dataclass
class Snapshot:
    topic: str  #: the changelog topic the offsets are of
    offsets: dict[int, int | None]  #: partition → last changelog offset in ``data`` (None: from the start)
    data: dict[str, Any]


def encode(topic: str, offsets: dict[int, int | None], data: dict[str, Any], origin: Origin) -> bytes:
    body = orjson.dumps(data)
    header = orjson.dumps(
        {
            "topic": topic,
            "offsets": {str(p): o for p, o in offsets.items()},
            "cluster_id": origin.cluster_id,
            "topic_id": origin.topic_id,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
    )
    return MAGIC + header + b"\n" + body


def write(path: Path, blob: bytes) -> None:
    """Replace ``path`` with ``blob`` atomically: a crash leaves the old snapshot or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def header_of(path: Path) -> dict[str, Any] | None:
    """A snapshot's header alone (its topic, offsets and origin); None if it is not one."""
    try:
        with open(path, "rb") as f:
            if f.readline() != MAGIC:
                return None
            header = orjson.loads(f.readline())
    except (OSError, orjson.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def offsets_of(path: Path) -> tuple[str, dict[int, int | None]] | None:
    """The changelog topic and offsets a snapshot covers, from its header alone (for tools)."""
    header = header_of(path)
    if header is None:
        return None
    return header["topic"], {int(p): o for p, o in header["offsets"].items()}


def foreign(header: dict[str, Any], view: ClusterView) -> str | None:
    """Why a snapshot (its header) does not belong to the cluster and changelog it meets, in a few
    words; None when it does. Every check is on what Kafka says now: the changelog is the truth."""
    topic = header.get("topic")
    if "cluster_id" not in header:
        return "no cluster id recorded (written by an older ccmon)"
    if header["cluster_id"] != view.cluster_id:
        return f"of Kafka cluster {header['cluster_id']}, this one is {view.cluster_id}"
    found = view.topics.get(str(topic))
    if found is None:
        return f"changelog {topic} does not exist on this cluster"
    if header.get("topic_id") != found.topic_id:
        return f"of an earlier topic {topic} (id {header.get('topic_id')}, now {found.topic_id})"
    try:
        offsets = {int(p): o for p, o in header["offsets"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return "unreadable offsets"
    beyond = {p: o for p, o in offsets.items() if o is not None and o >= found.ends.get(p, 0)}
    if beyond:
        ends = {p: found.ends.get(p, 0) for p in beyond}
        return f"offsets {beyond} beyond the end of {topic} (next offsets {ends})"
    return None


def set_aside(path: Path, folder: Path) -> Path:
    """Move a snapshot into ``folder`` (kept for a look, never loaded); returns where it went."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / path.name
    os.replace(path, dest)
    return dest


def vet(folder: Path, view: ClusterView, aside: Path) -> dict[str, str]:
    """Set aside, into ``aside``, every snapshot in ``folder`` that does not belong to ``view``;
    returns file name → why. Files that are not whole snapshots stay: ``read`` ignores them."""
    moved: dict[str, str] = {}
    for path in sorted(folder.glob("*.snap")) if folder.is_dir() else ():
        header = header_of(path)
        if header is None:
            continue
        why = foreign(header, view)
        if why is not None:
            set_aside(path, aside)
            moved[path.name] = why
    return moved


def read(path: Path, topic: str) -> Snapshot | None:
    """The snapshot at ``path`` if it is whole and of ``topic``; None (and why, in the log) if not."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("snapshot %s unreadable (%s): recovering from the whole changelog", path, exc.strerror)
        return None
    try:
        if not blob.startswith(MAGIC):
            raise ValueError("not a ccmon snapshot")
        header_end = blob.index(b"\n", len(MAGIC))
        header = orjson.loads(blob[len(MAGIC) : header_end])
        body = memoryview(blob)[header_end + 1 :]
        if len(body) != header["size"] or hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise ValueError("checksum mismatch (truncated or corrupt)")
        if header["topic"] != topic:
            raise ValueError(f"of changelog {header['topic']!r}, not {topic!r}")
        data = orjson.loads(body)
        offsets = {int(p): (None if o is None else int(o)) for p, o in header["offsets"].items()}
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        log.warning("snapshot %s ignored (%s): recovering from the whole changelog", path, exc)
        return None
    return Snapshot(topic, offsets, data)


class SnapshotStore(memory.Store):
    """Faust's in-memory store, started from a snapshot when there is a usable one.

    Only the first assignment of the process loads one (the store is empty then); every later
    rebalance recovers as the plain in-memory store does."""

    path: Path | None = None  #: set by the worker (streams/worker/app.py) before the app starts

    def __post_init__(self) -> None:
        super().__post_init__()
        self._offsets: dict[int, int | None] = {}
        self._first = True
        self.loaded: Snapshot | None = None  #: what the last start was given (tests and the log)

    @property
    def restored_offsets(self) -> dict[int, int | None]:
        """The offsets of the snapshot this process started from: still valid for a partition
        it has not written since (its state is that snapshot's plus the tail read after it)."""
        return self.loaded.offsets if self.loaded is not None else {}

    async def on_rebalance(
        self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        first, self._first = self._first, False
        self._offsets = {}
        if not first or self.path is None or self.data:
            return
        topic = self.table.changelog_topic.get_topic_name()
        mine = {tp.partition for tp in assigned if tp.topic == topic}
        snap = read(self.path, topic)
        if snap is None:
            return
        if set(snap.offsets) != mine:
            log.info(
                "snapshot %s is of partitions %s, assigned are %s: recovering from the whole changelog",
                self.path,
                sorted(snap.offsets),
                sorted(mine),
            )
            return
        self.data.update(snap.data)
        self._offsets = snap.offsets
        self.loaded = snap
        log.info(
            "state of %s from snapshot %s (%d records); changelog from offsets %s",
            topic,
            self.path,
            len(snap.data),
            snap.offsets,
        )

    def persisted_offset(self, tp: Any) -> int | None:
        """Where Faust's recovery starts reading this changelog partition (it re-reads that message)."""
        return self._offsets.get(tp.partition)


# Faust finds a table's store class by the scheme of its URL (faust.stores.by_url)
stores.STORES.aliases.setdefault(STORE_URL.split(":", 1)[0], f"{__name__}:SnapshotStore")
