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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from producers.sources.asterisk.mapping import Mapper
from producers.sources.asterisk.options import Options, options
from producers.sources.asterisk.queue_log import LineIds, Malformed, decode, epoch_of, line_id, parse
from producers.sources.asterisk.realtime import GAP_WAIT_S, RealtimeTable, as_line
from producers.sources.asterisk.tail import Position, QueueLogReader
from producers.sources.base import (
    STATE_VERSION,
    StateError,
    StatefulSource,
    load_state,
    pause,
    save_state,
    stop_event,
)
from streams.config import Settings
from streams.errors import CcmonError

__all__ = ["STATE_VERSION", "Ingest", "Summary", "input_state", "load_state", "main", "save_state"]

FILE_POLL_S = 0.1  #: a written line reaches Kafka well within the promised second
DB_POLL_S = 0.25
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


def input_state(opts: Options, kind: str) -> dict[str, Any]:
    """The input's saved state, checked whole before anything connects: its position, id counters
    and mapping state are rebuilt once here, so a state file of the wrong shape is one line and
    exit 2 at start, never a traceback in the middle of a run."""
    state = load_state(opts.state_file, kind, opts.mapping.source)
    if not state:
        return state
    try:
        if kind == "file":
            Position.from_state(state.get("position"))
        else:
            row = (state.get("position") or {}).get("id", 0)
            if not isinstance(row, int) or isinstance(row, bool):
                raise ValueError("position id must be an integer")
        Mapper(opts.mapping, state.get("mapping"))
        LineIds.from_state(opts.mapping.source, state.get("ids"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(
            f"state file {opts.state_file} has the wrong shape ({type(exc).__name__}: {str(exc)[:120]}); "
            f"move it away to start from the beginning"
        ) from None
    return state


class Ingest(StatefulSource):
    """Lines in, acknowledged events out, state saved after each acknowledged batch (the shared
    contract of ``producers/sources/base.py``)."""

    name = "asterisk"

    def __init__(self, s: Settings, opts: Options, kind: str, state: dict[str, Any]) -> None:
        super().__init__(s, opts.state_file, kind, opts.mapping.source, quiet=opts.quiet)
        self.opts = opts
        self.mapper = Mapper(opts.mapping, state.get("mapping"))
        self.ids = LineIds.from_state(opts.mapping.source, state.get("ids"))
        self.summary = Summary()
        self.summary.events = self.produced
        self._too_long = 0

    def state(self) -> dict[str, Any]:
        return {"ids": self.ids.to_state(), "mapping": self.mapper.to_state()}

    async def line(self, raw: bytes, lid: str | None = None) -> None:
        text = decode(raw)
        self.mark_dirty()
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
        await self.send(events)

    def too_long(self, reader: QueueLogReader) -> None:
        """Count the lines the reader skipped as longer than its maximum, as malformed lines."""
        new = reader.too_long - self._too_long
        if new:
            self._too_long = reader.too_long
            self.mark_dirty()
            self.summary.lines["(malformed)"] += new
            self.summary.skipped[f"malformed: longer than {reader.max_line} bytes"] += new

    async def release(self, now: float) -> None:
        await self.send(self.mapper.release(now))

    async def commit(self, position: Any) -> None:
        """Wait for every send to be acknowledged, then save the position with the mapping state."""
        await self.flush()
        self.summary.closed = Counter(self.mapper.closed)
        await super().commit(position)

    def progress_counts(self) -> tuple[int, ...]:
        return (sum(self.summary.lines.values()), sum(self.summary.events.values()))

    def progress_line(self) -> str:
        return (
            f"{sum(self.summary.lines.values())} lines, "
            f"{sum(self.summary.events.values())} events acknowledged"
        )


async def ingest_file(s: Settings, opts: Options, clock: Callable[[], float] = time.time) -> Summary:
    assert opts.queue_log is not None
    state = input_state(opts, "file")
    reader = QueueLogReader(opts.queue_log, Position.from_state(state.get("position")))
    run = Ingest(s, opts, "file", state)
    stop = stop_event()
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
            run.too_long(reader)
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
                run.too_long(reader)
                if last is not None:
                    await run.line(last[0])
                    position = last[1]
                await run.release(clock() - QUIET_MARGIN_S)
                await run.commit(position.to_state())
                break
            await run.release(clock() - QUIET_MARGIN_S)
            await run.commit(reader.position.to_state())
            await pause(stop, FILE_POLL_S)
        else:
            await run.commit(reader.position.to_state())
    finally:
        reader.close()
        await run.stop()
    run.summary.rotations = reader.rotations
    return run.summary


async def ingest_table(s: Settings, opts: Options, clock: Callable[[], float] = time.time) -> Summary:
    assert opts.database is not None
    state = input_state(opts, "table")
    after = int((state.get("position") or {}).get("id", 0))
    table = RealtimeTable(opts.database, opts.table, after, password_file=opts.password_file)
    table.connect()
    run = Ingest(s, opts, "table", state)
    stop = stop_event()
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
                await pause(stop, 2.0)
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
                await pause(stop, DB_POLL_S)
                continue
            await run.release(clock() - QUIET_MARGIN_S)
            await run.commit({"id": table.last_id})
            if not opts.follow:
                break
            await pause(stop, DB_POLL_S)
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
    input_state(opts, "file" if opts.queue_log is not None else "table")
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
