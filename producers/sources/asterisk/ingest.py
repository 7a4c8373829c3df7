"""``ccmon ingest asterisk``: queue_log (file or realtime table) -> the input topics, exactly once.

Exactly once is made of three parts: every event id is derived from its line (so a re-read is a
duplicate the worker drops), the events of a batch of lines are all acknowledged by the broker
before the batch's end position is saved, and the saved state holds the mapping's state with the
position (one JSON file, replaced atomically), so a restart continues with the very state that
produced the events before it. A crash between the acknowledgement and the save re-reads at most
one batch: same ids, dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from producers.sources.asterisk.mapping import Mapper, Out
from producers.sources.asterisk.options import Options, options
from producers.sources.asterisk.queue_log import LineIds, Malformed, decode, epoch_of, line_id, parse
from producers.sources.asterisk.realtime import GAP_WAIT_S, RealtimeTable, as_line
from producers.sources.asterisk.tail import Position, QueueLogReader
from streams.config import Settings
from streams.errors import CcmonError
from streams.kafka.producer import start_producer

STATE_VERSION = 1
FILE_POLL_S = 0.1  #: a written line reaches Kafka well within the promised second
DB_POLL_S = 0.25
PROGRESS_EVERY_S = 2.0
#: a quiet file's pending items (wrap-up ends...) are released this long after their time, by the
#: wall clock: queue_log has 1-second times, so a line still to come cannot be older than this
QUIET_MARGIN_S = 1.0


@dataclass
class Summary:
    lines: Counter[str] = field(default_factory=Counter)  #: by verb; "(malformed)" for the rest
    events: Counter[str] = field(default_factory=Counter)  #: by type (agent events: "state")
    skipped: Counter[str] = field(
        default_factory=Counter
    )  #: lines (or their contact part) without an event, by reason
    closed: Counter[str] = field(default_factory=Counter)  #: open calls closed by force, by cause
    rotations: int = 0

    def render(self, what: str, elapsed: float) -> str:
        def fmt(c: Counter[str]) -> str:
            return (
                ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"
            )

        rows = [
            f"ccmon ingest asterisk: {sum(self.lines.values())} lines from {what} in {elapsed:.1f} s; "
            f"{sum(self.events.values())} events produced, all acknowledged",
            f"  lines by verb:   {fmt(self.lines)}",
            f"  events by type:  {fmt(self.events)}",
            f"  lines skipped:   {sum(self.skipped.values())} ({fmt(self.skipped)})",
            f"  calls closed by force: {sum(self.closed.values())} ({fmt(self.closed)})",
        ]
        if self.rotations:
            rows.append(f"  rotations followed: {self.rotations}")
        return "\n".join(rows)


def load_state(path: Path | None, kind: str, source: str) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CcmonError(
            f"state file {path} is unreadable ({exc}); move it away to start from the beginning"
        ) from None
    if doc.get("version") != STATE_VERSION or doc.get("kind") != kind or doc.get("source") != source:
        raise CcmonError(
            f"state file {path} belongs to another input ({doc.get('kind')} {doc.get('source')!r}); "
            f"use one state file per input"
        )
    return doc


def save_state(path: Path, doc: dict[str, Any]) -> None:
    """Write-then-rename, fsync-ed: after a crash the file is the old state or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CcmonError(
            f"cannot save the state file {path} ({exc.strerror}); the events sent so far are "
            f"acknowledged, a run after fixing it re-sends them as duplicates"
        ) from None


class Ingest:
    """Lines in, acknowledged events out, state saved after each acknowledged batch."""

    def __init__(self, s: Settings, opts: Options, kind: str, state: dict[str, Any]) -> None:
        self.s, self.opts, self.kind = s, opts, kind
        self.mapper = Mapper(opts.mapping, state.get("mapping"))
        self.ids = LineIds.from_state(opts.mapping.source, state.get("ids"))
        self.summary = Summary()
        self.topics = s.input_topics
        self.producer: Any = None
        self._futures: list[asyncio.Future] = []
        self.started = time.monotonic()
        self._last_report = self.started
        self._reported = (0, 0)
        self._saved: dict[str, Any] | None = None
        self._dirty = False

    async def start(self) -> None:
        self.producer = await start_producer(self.s)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def _send(self, events: list[Out]) -> None:
        self._dirty = self._dirty or bool(events)
        for ev in events:
            self.summary.events[ev.event["type"]] += 1
            self._futures.append(
                await self.producer.send(self.topics[ev.stream], orjson.dumps(ev.event), key=ev.key.encode())
            )

    async def line(self, raw: bytes, lid: str | None = None) -> None:
        text = decode(raw)
        self._dirty = True
        if lid is None:
            lid = self.ids.next(text, epoch_of(text))
        try:
            parsed = parse(text)
        except Malformed as exc:
            self.summary.lines["(malformed)"] += 1
            self.summary.skipped[f"malformed: {exc.reason}"] += 1
            return
        self.summary.lines[parsed.verb] += 1
        events, skipped = self.mapper.feed(parsed, lid)
        if skipped:
            self.summary.skipped[skipped] += 1
        await self._send(events)

    async def release(self, now: float) -> None:
        await self._send(self.mapper.release(now))

    async def commit(self, position: dict[str, Any]) -> None:
        """Wait for every send to be acknowledged, then save the position with the mapping state."""
        if self._futures:
            await asyncio.gather(*self._futures)
            self._futures.clear()
        self.summary.closed = Counter(self.mapper.closed)
        if not self._dirty and position == self._saved:
            return
        self._dirty, self._saved = False, position
        if self.opts.state_file is not None:
            save_state(
                self.opts.state_file,
                {
                    "version": STATE_VERSION,
                    "kind": self.kind,
                    "source": self.opts.mapping.source,
                    "position": position,
                    "ids": self.ids.to_state(),
                    "mapping": self.mapper.to_state(),
                },
            )
        self.progress()

    def progress(self) -> None:
        now = time.monotonic()
        counts = (sum(self.summary.lines.values()), sum(self.summary.events.values()))
        if self.opts.quiet or not (now - self._last_report >= PROGRESS_EVERY_S and counts != self._reported):
            return
        self._last_report, self._reported = now, counts
        print(
            f"ccmon ingest asterisk: {sum(self.summary.lines.values())} lines, "
            f"{sum(self.summary.events.values())} events acknowledged",
            file=sys.stderr,
            flush=True,
        )

    def note(self, text: str) -> None:
        if not self.opts.quiet:
            print(f"ccmon ingest asterisk: {text}", file=sys.stderr, flush=True)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def ingest_file(s: Settings, opts: Options, clock: Callable[[], float] = time.time) -> Summary:
    assert opts.queue_log is not None
    state = load_state(opts.state_file, "file", opts.mapping.source)
    reader = QueueLogReader(opts.queue_log, Position.from_state(state.get("position")))
    run = Ingest(s, opts, "file", state)
    stop = _stop_event()
    await run.start()
    try:
        if opts.follow and opts.state_file is None:
            run.note(
                "no --state-file: a restart reads the file from its start again (no double counts: the "
                "worker drops re-read lines as duplicates, but it takes longer)"
            )
        for text in reader.notes:
            run.note(text)
        reader.notes.clear()
        position = reader.position
        while not stop.is_set():
            batch = reader.read()
            for raw, _ in batch:
                await run.line(raw)
            if batch:
                await run.commit(position.to_state())
                continue
            if reader.follow_rotation():
                for text in reader.notes:
                    run.note(text)
                reader.notes.clear()
                continue
            if not opts.follow:
                last = reader.rest()
                if last is not None:
                    await run.line(last[0])
                    position = last[1]
                await run.release(clock() - QUIET_MARGIN_S)
                await run.commit(position.to_state())
                break
            await run.release(clock() - QUIET_MARGIN_S)
            await run.commit(reader.position.to_state())
            await _pause(stop, FILE_POLL_S)
        else:
            await run.commit(reader.position.to_state())
    finally:
        reader.close()
        await run.stop()
    run.summary.rotations = reader.rotations
    return run.summary


async def ingest_table(s: Settings, opts: Options, clock: Callable[[], float] = time.time) -> Summary:
    assert opts.database is not None
    state = load_state(opts.state_file, "table", opts.mapping.source)
    table = RealtimeTable(opts.database, opts.table, int((state.get("position") or {}).get("id", 0)))
    table.connect()
    run = Ingest(s, opts, "table", state)
    stop = _stop_event()
    await run.start()
    down_since: float | None = None
    try:
        if table.last_id:
            run.note(f"resuming after row id {table.last_id}")
        while not stop.is_set():
            try:
                rows = table.fetch()
                if down_since is not None:
                    run.note("database reachable again")
                down_since = None
            except ConnectionError as exc:
                if down_since is None:
                    run.note(f"database unreachable ({exc}); retrying")
                    down_since = time.monotonic()
                await _pause(stop, 2.0)
                continue
            ready = table.take(rows, clock())
            for row in ready:
                await run.line(
                    as_line(row, opts.zone).encode(), line_id(opts.mapping.source, f"row:{row[0]}")
                )
            if ready:
                await run.commit({"id": table.last_id})
                continue
            if table.waiting:  # a row whose id is taken but not yet committed: wait for it
                await _pause(stop, DB_POLL_S)
                continue
            await run.release(clock() - QUIET_MARGIN_S)
            await run.commit({"id": table.last_id})
            if not opts.follow:
                break
            await _pause(stop, DB_POLL_S)
        else:
            await run.commit({"id": table.last_id})
    finally:
        table.close()
        await run.stop()
    if table.gaps_skipped:
        run.summary.skipped[
            f"gaps in row ids given up on after {GAP_WAIT_S:.0f} s (rolled-back inserts)"
        ] += table.gaps_skipped
    return run.summary


def main(args: Any, s: Settings) -> int:
    opts = options(args, s)
    from streams.kafka.topics import ensure_topics

    asyncio.run(ensure_topics(s))
    from aiokafka.errors import KafkaError

    started = time.monotonic()
    try:
        if opts.queue_log is not None:
            summary, what = asyncio.run(ingest_file(s, opts)), str(opts.queue_log)
        else:
            summary, what = asyncio.run(ingest_table(s, opts)), f"table {opts.table}"
    except KafkaError as exc:
        raise CcmonError(
            f"Kafka did not acknowledge the events ({type(exc).__name__}: {exc}); the saved position "
            f"was not advanced past them: run the same command again to resume"
        ) from None
    print(summary.render(what, time.monotonic() - started), flush=True)
    return 0
