"""What every source shares: the producer, acknowledged sends, and state saved only after them.

Modelled on quix-streams' ``sources/base`` (``Source`` / ``StatefulSource``): a :class:`Source`
produces :class:`~producers.sources.events.SourceEvent` values to the input topics and can wait
until Kafka acknowledged them (``flush``); a :class:`StatefulSource` also has a state (a read
position, a mapping's open contacts...) that it saves to its state file in ``commit``, after the
flush and never before. Exactly once is then three rules that each source keeps:

- every event id is derived from the source's own record (a queue_log line, a webhook delivery),
  so reading or receiving the record again makes the same events, which the worker drops;
- the state saved with a position is the state that produced the events up to it: a restart
  resumes with it and makes the same events again for what follows;
- a crash between the acknowledgement and the save re-reads at most what the save would have
  covered: the same ids, duplicates in the worker.

Asterisk's ingester (``producers/sources/asterisk/ingest.py``) and the webhook receiver
(``producers/sources/webhooks/receiver.py``) are built on it; ``docs/sources/README.md`` says how
to add a source.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from producers.sources.events import SourceEvent
from streams.config import Settings
from streams.errors import CcmonError

__all__ = ["STATE_VERSION", "Source", "StateError", "StatefulSource", "load_state", "pause", "save_state"]

STATE_VERSION = 1
PROGRESS_EVERY_S = 2.0


class StateError(CcmonError):
    """A state file that is not this input's: bad configuration, exit 2."""

    exit_code = 2


def load_state(path: Path | None, kind: str, source: str) -> dict[str, Any]:
    """The saved state, or {} when there is none; anything but a state this input wrote is a
    one-line :class:`StateError` (exit 2), never a traceback."""
    if path is None or not path.exists():
        return {}
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StateError(
            f"state file {path} is unreadable ({exc}); move it away to start from the beginning"
        ) from None
    if not isinstance(doc, dict):
        raise StateError(f"state file {path} is not a ccmon state (a JSON {type(doc).__name__})")
    if doc.get("version") != STATE_VERSION or doc.get("kind") != kind or doc.get("source") != source:
        raise StateError(
            f"state file {path} belongs to another input ({doc.get('kind')} {doc.get('source')!r}); "
            f"use one state file per input"
        )
    return doc


def save_state(path: Path, doc: dict[str, Any]) -> None:
    """Write-then-rename, fsync-ed: after a crash the file is the old state or the new, never half.
    The temporary file is made new by ``mkstemp`` (O_CREAT|O_EXCL, mode 0600) in the state's own
    directory: a symlink or file planted at a predictable name is never followed or overwritten,
    and ``os.replace`` swaps the name itself, not what a symlink there points to."""
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = ""
    except OSError as exc:
        raise CcmonError(
            f"cannot save the state file {path} ({exc.strerror}); the events sent so far are "
            f"acknowledged, a run after fixing it re-sends them as duplicates"
        ) from None
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def stop_event() -> asyncio.Event:
    """Set by SIGINT or SIGTERM: a source finishes its batch, commits, and returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once on a stop signal."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


class Source:
    """Events out to the input topics; ``flush`` returns when Kafka acknowledged all sent so far."""

    #: the command's name in progress lines and notes (``ccmon ingest <name>``)
    name = "source"

    def __init__(self, s: Settings, quiet: bool = False) -> None:
        self.s, self.quiet = s, quiet
        self.topics = s.input_topics
        self.producer: Any = None
        self.produced: Counter[str] = Counter()  #: events sent, by type (agent events: "state")
        self._futures: list[asyncio.Future[Any]] = []
        self._dirty = False

    async def start(self) -> None:
        from streams.kafka.producer import start_producer

        self.producer = await start_producer(self.s)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, events: Iterable[SourceEvent], track: bool = True) -> list[asyncio.Future[Any]]:
        """Queue ``events`` in order (one key, one partition: their order is kept); the futures
        resolve when Kafka acknowledged each one. ``track=False``: the caller awaits them itself
        (a webhook delivery waits for its own events only), ``flush`` does not."""
        sent: list[asyncio.Future[Any]] = []
        for ev in events:
            self._dirty = True
            self.produced[ev.type] += 1
            sent.append(await self.producer.send(self.topics[ev.stream], ev.encode(), key=ev.key.encode()))
        if track:
            self._futures += sent
        return sent

    async def flush(self) -> None:
        if self._futures:
            pending, self._futures = self._futures, []
            await asyncio.gather(*pending)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"ccmon ingest {self.name}: {text}", file=sys.stderr, flush=True)


class StatefulSource(Source):
    """A source with a state file: ``commit(position)`` flushes, then saves the position with
    ``state()``, so the saved state never runs ahead of what Kafka holds."""

    def __init__(
        self, s: Settings, state_file: Path | None, kind: str, source: str, quiet: bool = False
    ) -> None:
        super().__init__(s, quiet)
        self.state_file, self.kind, self.source = state_file, kind, source
        self._saved: Any = None
        self._last_report = time.monotonic()
        self._reported: tuple[int, ...] = ()

    def state(self) -> dict[str, Any]:
        """What to save beside the position (a mapping's state, id counters)."""
        return {}

    def mark_dirty(self) -> None:
        """The state changed without an event (a line read and skipped): save it at the next commit."""
        self._dirty = True

    async def commit(self, position: Any) -> None:
        await self.flush()
        if not self._dirty and position == self._saved:
            return
        self._dirty, self._saved = False, position
        if self.state_file is not None:
            save_state(
                self.state_file,
                {
                    "version": STATE_VERSION,
                    "kind": self.kind,
                    "source": self.source,
                    "position": position,
                    **self.state(),
                },
            )
        self.progress()

    def progress_counts(self) -> tuple[int, ...]:
        return (sum(self.produced.values()),)

    def progress_line(self) -> str:
        return f"{sum(self.produced.values())} events acknowledged"

    def progress(self) -> None:
        """A progress line on stderr at most every PROGRESS_EVERY_S, when something moved."""
        now = time.monotonic()
        counts = self.progress_counts()
        if self.quiet or not (now - self._last_report >= PROGRESS_EVERY_S and counts != self._reported):
            return
        self._last_report, self._reported = now, counts
        print(f"ccmon ingest {self.name}: {self.progress_line()}", file=sys.stderr, flush=True)
