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

log = logging.getLogger("ccmon.snapshot")

MAGIC = b"ccmon-snapshot 1\n"
#: the store of ccmon's tables (``app.Table(store=...)``), registered with Faust's store registry
STORE_URL = "ccmon-snapshot://local"  # a host: a URL with none is false, and Faust would take the app default


@dataclass
class Snapshot:
    topic: str  #: the changelog topic the offsets are of
    offsets: dict[int, int | None]  #: partition → last changelog offset in ``data`` (None: from the start)
    data: dict[str, Any]


def encode(topic: str, offsets: dict[int, int | None], data: dict[str, Any]) -> bytes:
    body = orjson.dumps(data)
    header = orjson.dumps(
        {
            "topic": topic,
            "offsets": {str(p): o for p, o in offsets.items()},
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


def offsets_of(path: Path) -> tuple[str, dict[int, int | None]] | None:
    """The changelog topic and offsets a snapshot covers, from its header alone (for tools)."""
    try:
        with open(path, "rb") as f:
            if f.readline() != MAGIC:
                return None
            header = orjson.loads(f.readline())
    except (OSError, orjson.JSONDecodeError):
        return None
    return header["topic"], {int(p): o for p, o in header["offsets"].items()}


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
