"""Faust's aiokafka consumer with a cheaper per-message hand-off to the streams, and stream
positions that are rewound after every rebalance.

Faust's fetch loop (``Consumer._drain_messages``) passes every message to the streams through
``wait_first(callback(message), suspend_flow.wait())``: two tasks and an ``asyncio.wait`` per
message, so that a rebalance can interrupt a blocked hand-off. Profiled, that is most of a
worker's time at a few thousand messages per second. This loop awaits the hand-off directly while
the flow runs and keeps Faust's interruptible path for when it is suspended. A message whose
consumer generation ended while it was handed off does not move the read offset (the streams
skip it, as they skip every message of an old generation) and ends the fetched batch, exactly
as Faust's own loop does when the generation changes.

Rebalances (issue 10's remaining loss, found by the crash search). When recovery ends, Faust
resumes the stream partitions, seeks them to their committed offsets, and only then resumes its
flow control, which empties every stream's queue. Messages fetched and handed over in between
(the seek awaits a committed-offset request per partition: tens to hundreds of milliseconds)
were dropped unprocessed and unacknowledged, while the fetch position had moved past them. A
partition with no committed offset is not sought at all (nor one at offset 0); one that is gets
the next message after a hole, which Faust's loop books as a gap, i.e. as acknowledged, so the
commit went past the lost messages. Either way later records of the partition were decided, and
a restarted worker skipped the lost ones as decided already (rule 3): contacts lost for good
(faust-streaming issue 596 describes the same race). So this loop hands no stream message over
while a rebalance runs, and before the first one after it, it seeks every stream partition to
its committed offset, or to the beginning when it has none, and drops what it had fetched.

Which rebalance a rewind covers (a worker that sat idle with unread messages, issue 10): Faust
starts a rebalance in its consumer thread (``on_rebalance_start``: ``rebalancing`` is set, then
``rebalancing_count`` incremented), concurrently with this loop. Read in the other order (is a
rebalance running? then: which one?), the thread can start rebalance N+1 in between: the loop
rewinds mid-revocation and books the rewind for N+1, drops the stream messages it fetches during
N+1, and does not rewind after N+1, so the fetch position stays past the dropped messages and
the worker idles with lag until the next rebalance. So the count is read first and passed on:
a rewind is booked for a rebalance that had started before it, and one that starts after the
read is rewound for again when it ends.

"A rebalance runs" is not ``app.rebalancing`` alone. A rebalance can begin (revocation: flag set)
while the previous one's recovery still runs, e.g. the rejoin aiokafka makes right after a new
worker's first assignment when a changelog topic appears in the metadata. That recovery still
ends: it seeks, resumes the flow and clears the flag while the new rebalance waits for its
assignment. This loop then rewound too early and handed over messages of the ending generation,
which are skipped once the new one is assigned; Faust's seek after it moves only partitions with a
committed offset, so on the others (a new worker's facts partitions) they were not fetched again.
(Seen once as a fresh reference worker's missing facts in tests/integration/test_broker_outage.py
on the batch hand-off branch; the likely cause, not reproduced.) So a rebalance runs from its
revocation until Faust ends it *and* its assignment has come (``on_partitions_assigned``).

Changelog records fetched while recovery waits to resume the flow (found by
tests/integration/test_rebalance.py stalling in CI). A fetch the loop started before a
rebalance waits in the consumer thread on the *live* set of active partitions. Recovery seeks a
newly assigned changelog partition to its start and resumes it, then resumes the flow; a fetch
that returns in between hands Faust's ``getmany`` records while the flow is still stopped, and
it drops them (it seeks only the stream partitions back). The changelog's fetch position is then
past records the recovery never received: it waits for them forever ("No event received for
active tp ... since recovery start") and the worker exports nothing. Faust drops a fetch's
remainder also when the generation changes mid-batch, and this loop when it breaks off a batch.
So after every fetch, a changelog partition under recovery whose fetched records were not all
handed over is sought back to where the recovery stands, as recovery itself seeks it
(``Recovery._seek_offsets``); the recovery ignores records it has seen, so reading one twice is
harmless, and it never skips one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP, Message
from mode import Service

from streams.dev import killpoints
from streams.faust_ext.internals import recovery_position


class HandOffConsumer(Consumer):
    #: awaited before offsets are committed (Faust then flushes its producer and commits): the
    #: worker finishes writing the state of every event it acknowledged there
    before_commit: Callable[[], Awaitable[None]] | None = None
    #: the rebalance (``app.rebalancing_count``) after which the stream positions were rewound
    _rewound_for: int = 0
    #: the rebalance (``app.rebalancing_count``) whose assignment came last
    _assigned_for: int = 0

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self._assigned_for = self.app.rebalancing_count
        await super().on_partitions_assigned(assigned, generation_id)

    def _settled(self, rebalance: int) -> bool:
        """No rebalance runs: the last one begun (``rebalance``, read before the flag) has had its
        assignment, and Faust has ended it."""
        return self._assigned_for == rebalance and not self.app.rebalancing

    #: what the last fetch returned (topic-partition -> records), until the loop has handed it over
    _fetched: Mapping[Any, Any] | None = None

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active_partitions = await super()._wait_next_records(timeout)
        self._fetched = records
        return records, active_partitions

    async def _refetch_changelogs(self, looked_at: Mapping[Any, int]) -> None:
        """Seek each changelog partition under recovery whose fetched records the loop did not
        all look at (``looked_at``: partition -> last offset it saw) back to the recovery's
        position (see the module's docstring)."""
        fetched, self._fetched = self._fetched, None
        if not fetched:
            return
        seeks = {}
        for tp, records in fetched.items():
            if (
                records
                and looked_at.get(tp) != records[-1].offset
                and (at := recovery_position(self.app, tp)) is not None
            ):
                seeks[TP(tp.topic, tp.partition)] = at
        if seeks:
            self.log.info(
                "changelog records fetched but not handed over (the flow was stopped or the batch "
                "ended): fetched again from %s",
                {f"{tp.topic}[{tp.partition}]": at for tp, at in seeks.items()},
            )
            await self.seek_wait(seeks)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        await killpoints.pause("seeked")  # test-only: hold the window the rewind closes open

    async def _rewind_once(self, rebalance: int) -> None:
        """Rewind once per rebalance, after it has ended: ``rebalance`` is ``rebalancing_count``
        read before ``rebalancing`` was seen False (see the module's docstring)."""
        try:
            await self._rewind()
        except Exception as exc:  # e.g. another rebalance began meanwhile: done again after it
            self.log.warning("rewinding the stream partitions failed (%r); retrying", exc)
        else:
            self._rewound_for = rebalance
            # once per rebalance: a worker idle with lag shows whether its last rebalance was rewound for
            self.log.info("stream partitions sought to their committed offsets after rebalance %d", rebalance)

    async def _rewind(self) -> None:
        """Fetch every stream partition again from its committed offset, or from the beginning
        (``consumer_auto_offset_reset``) when it has none; nothing read since."""
        committed = await self.seek_to_committed()  # seeks those committed at an offset > 0
        streams = {tp: offset for tp, offset in committed.items() if not self._is_changelog_tp(tp)}
        await self.seek_wait({tp: 0 for tp, offset in streams.items() if not offset})
        for tp in streams:
            self._read_offset[tp] = None

    async def _commit_offsets(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        if self.before_commit is not None:
            await self.before_commit()
        killpoints.reached("commit")
        done = await super()._commit_offsets(offsets, start_new_transaction)
        killpoints.reached("committed")
        return done

    def ack(self, message: Message) -> bool:
        """Faust acknowledges a message of an earlier consumer generation without processing it
        (its streams skip such messages, and a batch taken before a rebalance is acknowledged
        whole). Counted as done, its offset could be committed while the copy fetched again
        after the rebalance is still unprocessed, and a crash then would lose it. Such a
        message is marked acknowledged (nothing waits for it) but moves no offset."""
        if message.generation_id != self.app.consumer_generation_id:
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs inside the worker
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        suspended = self.suspend_flow.is_set
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        app = self.app
        changelogs = app.tables.changelog_topics  # fixed once the tables are defined
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                rebalance = app.rebalancing_count  # first: the thread sets rebalancing, then this
                if self._settled(rebalance) and self._rewound_for != rebalance:
                    await self._rewind_once(rebalance)  # also when nothing is left to fetch: it was discarded
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                looked_at: dict[Any, int] = {}  # changelog partition -> last offset handled or skipped
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    if tp.topic not in changelogs:  # recovery reads the changelogs meanwhile
                        rebalance = app.rebalancing_count  # before rebalancing (as above)
                        if not self._settled(rebalance):
                            continue  # Faust empties the streams' queues when it ends: not handed over
                        if self._rewound_for != rebalance:
                            await self._rewind_once(rebalance)
                            break  # the rest was fetched before the rewind
                    offset = message.offset
                    if tp.topic in changelogs:
                        looked_at[tp] = offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # read already (Faust's loop drops these too)
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if suspended():
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    else:
                        await callback(message)
                        if message.generation_id != app.consumer_generation_id:
                            break
                    set_read_offset(tp, offset)
                await self._refetch_changelogs(looked_at)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise


def install(app: Any, before_commit: Callable[[], Awaitable[None]]) -> None:
    """Make ``app`` create its consumer from :class:`HandOffConsumer` (before the app starts)."""
    app.transport.Consumer = type(
        "HandOffConsumer", (HandOffConsumer,), {"before_commit": staticmethod(before_commit)}
    )
