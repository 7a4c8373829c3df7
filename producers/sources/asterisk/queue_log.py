"""One queue_log line: ``epoch|callid|queue|agent|VERB|data1|data2|...`` parsed, and its stable id.

Pure: no I/O. The parser is lenient about what varies between Asterisk versions (how many data
fields a verb carries: 1.2's CONNECT has the holdtime only, pre-1.8 EXITWITHTIMEOUT the position
only, 1.8/11 write TRANSFER) and strict about the frame every version shares (an integer epoch,
four columns and an upper-case verb), so that garbage is recognised as garbage and reported.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

#: a verb as app_queue.c and dialplans' QueueLog() write them (ENTERQUEUE, RINGNOANSWER, WRAPUPSTART...)
VERB = re.compile(r"[A-Z][A-Z0-9_]{1,31}")
NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Line:
    ts: float  #: epoch seconds (UTC)
    callid: str  #: the caller channel's uniqueid, or "NONE"
    queue: str  #: the queue name, or "NONE"
    agent: str  #: the member name / interface, or "NONE"
    verb: str
    data: tuple[str, ...]

    def field(self, i: int) -> str:
        """data field ``i`` (1-based like data1..data5), "" when this version did not write it."""
        return self.data[i - 1] if 0 < i <= len(self.data) else ""


class Malformed(ValueError):
    """The line is not a queue_log line; ``reason`` is the summary's stable wording."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(text: str) -> Line:
    """A queue_log line (without its newline) or :class:`Malformed`."""
    text = text.rstrip("\r")
    if not text.strip():
        raise Malformed("empty line")
    parts = text.split("|")
    if len(parts) < 5:
        raise Malformed("fewer than 5 columns")
    epoch, callid, queue, agent, verb = (p.strip() for p in parts[:5])
    if not epoch.isdigit() or len(epoch) > 12:
        raise Malformed("time is not an integer epoch")
    if not VERB.fullmatch(verb):
        raise Malformed("no verb in the 5th column")
    if not callid or not queue or not agent:
        raise Malformed("empty callid, queue or agent column")
    return Line(float(int(epoch)), callid, queue, agent, verb, tuple(parts[5:]))


def decode(raw: bytes) -> str:
    """queue_log is written as UTF-8 (caller-id names can be anything): undecodable bytes are
    replaced rather than dropped, so the line is still reported."""
    return raw.decode("utf-8", errors="replace")


@dataclass(slots=True)
class LineIds:
    """Stable ids of lines: a hash of the source's name, the line's text and how many identical
    lines came before it in the same second.

    The same line read again (a restart, a re-read of a rotated file, a second ingester) gets the
    same id, so the events made from it carry the same ``event_id``s and the worker drops them as
    duplicates. Identical lines are rare (two PAUSEALL in one second) but real; the occurrence
    index tells them apart. Counts are kept for the last ``KEEP_S`` seconds only (Asterisk's
    threads may write a line a second or two out of order), so the state is tiny and a re-read
    that starts at any second boundary gives the same ids.
    """

    KEEP_S = 10.0
    source: str
    newest: float = -1.0
    seen: dict[str, int] = field(default_factory=dict)  #: "second:digest" -> lines so far

    def next(self, text: str, ts: float | None) -> str:
        second = -1.0 if ts is None else ts
        if second > self.newest:
            self.newest = second
            low = second - self.KEEP_S
            self.seen = {k: n for k, n in self.seen.items() if float(k.split(":", 1)[0]) >= low}
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        key = f"{second}:{digest}"
        n = self.seen.get(key, 0)
        self.seen[key] = n + 1
        return line_id(self.source, f"{digest}:{n}")

    def to_state(self) -> dict[str, Any]:
        return {"newest": self.newest, "seen": dict(self.seen)}

    @classmethod
    def from_state(cls, source: str, d: dict[str, Any] | None) -> LineIds:
        if not d:
            return cls(source)
        return cls(source, float(d["newest"]), {str(k): int(v) for k, v in d["seen"].items()})


def line_id(source: str, identity: str) -> str:
    """``ast-`` + 24 hex digits of (source, identity): short enough for event ids with suffixes."""
    return "ast-" + hashlib.blake2b(f"{source}\x00{identity}".encode(), digest_size=12).hexdigest()


def epoch_of(text: str) -> float | None:
    """The line's second, or None for lines without one (malformed lines still get an id)."""
    head = text.split("|", 1)[0].strip()
    return float(int(head)) if head.isdigit() and len(head) <= 12 else None
