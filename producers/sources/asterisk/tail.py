"""Reading queue_log like ``tail -F``: complete lines with the position after each, across rotation.

Rotation is seen by file identity, not by name: after rename rotation (logrotate's default and
Asterisk's ``logger rotate``, whatever its rotatestrategy) the path names a new inode, so the old
file is read to its end and the new one from its start; after copytruncate the same inode shrinks
or starts with other bytes, so it is read again from 0. A position is (device, inode, offset, a
hash of the file's first bytes): the hash tells a reused inode or a truncated-and-regrown file
from the file the offset belongs to. A position whose file was rotated away while the ingester was
stopped is found again among its siblings (``queue_log.0``, ``queue_log-20260101``...), read to its
end, and then the current file from its start.

A line longer than ``max_line`` bytes (default :data:`MAX_LINE`, far above any real queue_log line)
is not a queue_log line: it is skipped, counted in ``too_long``, without being kept in memory, and
the search for a newline never looks at a byte twice, so such a line costs time linear in its size.

The one loss that no reader can prevent is copytruncate's own: lines written between the copy and
the truncation exist only in the copy. Polling every 0.1 s keeps that window as small as it gets.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 64
CHUNK = 1 << 16
#: the longest line read as a line; queue_log lines are under 1 KiB (verb, ids and five data fields)
MAX_LINE = 1 << 16


@dataclass(frozen=True, slots=True)
class Position:
    dev: int = 0
    inode: int = 0
    offset: int = 0
    head: str = ""  #: hash of the file's first min(64, offset) bytes

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict[str, Any] | None) -> Position | None:
        """The saved position; a value of another shape is a ValueError (the caller says which file)."""
        if not d:
            return None
        if not isinstance(d, dict) or set(d) - {"dev", "inode", "offset", "head"}:
            raise ValueError(f"expected dev, inode, offset and head, got {str(d)[:80]}")
        pos = cls(**d)
        ints = (pos.dev, pos.inode, pos.offset)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise ValueError("dev, inode and offset must be non-negative integers")
        if not isinstance(pos.head, str):
            raise ValueError("head must be a string")
        return pos


def _head(fd: int, upto: int) -> str:
    data = os.pread(fd, min(HEAD_BYTES, upto), 0)
    return hashlib.blake2b(data, digest_size=8).hexdigest() if data else ""


class QueueLogReader:
    """Complete lines of one queue_log path, following it through rotations.

    ``read`` returns what is there now; ``follow_rotation`` is called at the end of the data to see
    whether the path now names another file (or this one was truncated)."""

    def __init__(self, path: Path, position: Position | None = None, max_line: int = MAX_LINE) -> None:
        self.path = path
        self.notes: list[str] = []  #: what the reader decided on opening/rotating, for stderr
        self.rotations = 0
        self.max_line = max_line
        self.too_long = 0  #: lines longer than ``max_line`` skipped
        self.scanned = 0  #: bytes searched for a newline (each once): the work reading costs
        self._fd = -1
        self._buf = bytearray()
        self._start = 0  #: first byte of ``_buf`` not yet returned
        self._scan = 0  #: where the search for the next newline resumes
        self._skip = 0  #: bytes of an over-long line already dropped from ``_buf``
        self._offset = 0  #: bytes of the current file consumed as complete lines
        self._ident = (0, 0)
        self._head, self._head_len = "", 0
        self._then_path = False  #: reading a rotated-away file: the path comes next
        self._open_at(position)

    # ---- opening -------------------------------------------------------------------------------
    def _open(self, path: Path, offset: int) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        self.close()
        st = os.fstat(fd)
        self._fd, self._ident, self._offset = fd, (st.st_dev, st.st_ino), offset
        self._buf, self._start, self._scan, self._skip = bytearray(), 0, 0, 0
        self._head, self._head_len = "", 0
        os.lseek(fd, offset, os.SEEK_SET)
        return True

    def _matches(self, path: Path, pos: Position) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != (pos.dev, pos.inode) or st.st_size < pos.offset:
            return False
        with open(path, "rb") as f:
            return _head(f.fileno(), pos.offset) == pos.head

    def _open_at(self, pos: Position | None) -> None:
        if pos is None or pos.offset == 0:
            self._open(self.path, 0)
            return
        if self._matches(self.path, pos):
            self._open(self.path, pos.offset)
            self.notes.append(f"resuming {self.path} at byte {pos.offset}")
            return
        for sibling in sorted(self.path.parent.glob(self.path.name + "*")):
            if sibling != self.path and self._matches(sibling, pos):
                self._open(sibling, pos.offset)
                self._then_path = True
                self.notes.append(
                    f"{self.path} was rotated while stopped: reading the rest of {sibling.name} first"
                )
                return
        self.notes.append(
            f"the file of the saved position is gone: reading {self.path} from the start "
            f"(lines read before keep their event ids and are dropped as duplicates)"
        )
        self._open(self.path, 0)

    # ---- reading -------------------------------------------------------------------------------
    @property
    def position(self) -> Position:
        covered = min(HEAD_BYTES, self._offset)
        if covered != self._head_len:
            self._head, self._head_len = _head(self._fd, covered), covered
        return Position(self._ident[0], self._ident[1], self._offset, self._head)

    def read(self, max_lines: int = 5000) -> list[tuple[bytes, Position]]:
        """Complete lines available now (without their newline), each with the position after it."""
        out: list[tuple[bytes, Position]] = []
        if self._fd < 0:
            return out
        if self._offset and self._truncated():
            self.rotations += 1
            self.notes.append(f"{self.path} truncated (copytruncate): reading it again from the start")
            self._open(self.path, 0)
        while len(out) < max_lines:
            nl = self._buf.find(b"\n", self._scan)
            if nl < 0:
                self.scanned += len(self._buf) - self._scan
                if self._skip + len(self._buf) - self._start > self.max_line:
                    self._skip += len(self._buf) - self._start  # an over-long line: keep none of it
                    self._buf.clear()
                    self._start = 0
                self._scan = len(self._buf)
                data = os.read(self._fd, CHUNK)
                if not data:
                    break
                if self._start:
                    del self._buf[: self._start]
                    self._scan -= self._start
                    self._start = 0
                self._buf += data
                continue
            self.scanned += nl + 1 - self._scan
            length = self._skip + nl - self._start
            line = None if length > self.max_line else bytes(self._buf[self._start : nl])
            self._start = self._scan = nl + 1
            self._skip = 0
            self._offset += length + 1
            if line is None:
                self.too_long += 1
            else:
                out.append((line, self.position))
        return out

    def rest(self) -> tuple[bytes, Position] | None:
        """A last line without its newline (one-shot reads only: a writer may still be writing it)."""
        length = self._skip + len(self._buf) - self._start
        if not length:
            return None
        line = bytes(self._buf[self._start :])
        self._buf, self._start, self._scan, self._skip = bytearray(), 0, 0, 0
        self._offset += length
        if length > self.max_line:
            self.too_long += 1
            return None
        return line, self.position

    def follow_rotation(self) -> bool:
        """At the end of the data: switch to the file the path names now, or start over a truncated
        one. True when there is something new to read from."""
        if self._then_path:
            self._then_path = False
            self.rotations += 1
            return self._open(self.path, 0)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # between the rename and the new file: keep waiting
        if self._fd < 0:
            return self._open(self.path, 0)
        if (st.st_dev, st.st_ino) != self._ident:
            leftover = os.read(self._fd, CHUNK)  # lines written to the old file before the writer reopened
            if leftover:
                self._buf += leftover
                return True
            if self._pending:
                self.notes.append(
                    f"rotated: {self._pending} bytes without a newline at the end of the old file dropped"
                )
            self.rotations += 1
            self.notes.append(f"{self.path} rotated (new file): reading it from the start")
            return self._open(self.path, 0)
        if st.st_size < self._offset + self._pending or (self._offset and self._truncated()):
            self.rotations += 1
            self.notes.append(f"{self.path} truncated (copytruncate): reading it again from the start")
            return self._open(self.path, 0)
        return False

    @property
    def _pending(self) -> int:
        """Bytes read past the last complete line (a line still being written, or being skipped)."""
        return self._skip + len(self._buf) - self._start

    def _truncated(self) -> bool:
        """The file's first bytes are no longer those the position was taken with (truncated and
        written again, maybe already past the old offset)."""
        expected = self.position.head
        return _head(self._fd, min(HEAD_BYTES, self._offset)) != expected

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
