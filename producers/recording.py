"""Recordings: JSON lines ``{"topic", "key", "value"}`` (SPEC §5), read and written here.

``value`` is an event object, or a JSON string holding the raw message bytes (so bad input can
be replayed): the string is encoded as UTF-8, and lone surrogates U+DC80-U+DCFF stand for the
bytes 0x80-0xFF that are not valid UTF-8 (Python's "surrogateescape"), e.g. "\udcff" is the byte
0xFF. ``key`` is a string or null. A line may carry ``"at"`` (seconds since the recording began)
to replay at recorded pace; without it the event's own ``ts`` sets the pace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.core.events import event_time
from streams.errors import CcmonError


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    at: float | None  #: seconds since the recording's start, for --speed pacing


def _event_time(value: Any) -> float | None:
    return event_time(value.get("ts")) if isinstance(value, dict) else None


def read(path: Path) -> Iterator[Message]:
    """Messages of a recording, in order; a malformed line ends with a CcmonError naming it."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CcmonError(f"cannot read recording {path}: {exc.strerror}") from None
    first_ts: float | None = None
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:  # lone surrogates (raw bytes) are refused by orjson
                    doc = json.loads(line)
                topic, key, value = doc["topic"], doc.get("key"), doc["value"]
                if not isinstance(topic, str) or not (key is None or isinstance(key, str)):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise CcmonError(
                    f"{path}:{lineno}: not a recording line "
                    f'(expected {{"topic": ..., "key": ..., "value": ...}})'
                ) from None
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else orjson.dumps(value)
            at = doc.get("at")
            if not isinstance(at, (int, float)):
                ts = _event_time(value)
                if ts is not None and first_ts is None:
                    first_ts = ts
                at = None if ts is None or first_ts is None else ts - first_ts
            yield Message(topic, key.encode() if key is not None else None, raw, at)


def line(topic: str, key: str | None, value: Any) -> bytes:
    """One recording line (a dict value is an event; a str value is raw bytes)."""
    doc = {"topic": topic, "key": key, "value": value}
    try:
        return orjson.dumps(doc) + b"\n"
    except TypeError:  # lone surrogates standing for raw bytes
        return json.dumps(doc).encode() + b"\n"
