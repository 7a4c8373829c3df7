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

"A rebalance runs" is not Faust's ``app.rebalancing`` alone. When a rebalance begins (revocation:
flag set, flow suspended) while the recovery of the previous one is still running, for instance
a rejoin right after a worker's first assignment because a changelog topic appeared in the
metadata, that recovery still ends: it seeks, resumes the flow and clears the flag, while the
new rebalance waits for its assignment. Fetching on then, this loop rewound for the new
rebalance too early and handed over messages of the ending generation, which the agents skip
once the new one is assigned; after it, Faust seeks only the partitions with a committed offset
and this loop did not rewind again, so on the others (a new worker's facts partitions have none
yet) those messages were never fetched again, lost until a restart (the likely cause of the
facts a fresh reference worker lost in one run of tests/integration/test_broker_outage.py). So a
rebalance runs from its revocation until Faust ends it *and* its assignment has come
(:meth:`HandOffConsumer.on_partitions_assigned` records it).

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

Batch hand-off (issue 15). Messages of the topics registered in ``batch_channels`` (the inputs
and the facts) do not go through Faust's conductor at all: no Event, no stream queue entry, no
per-message ``track_message``/``ack``. The fetch loop collects each fetch's messages of such a
topic into :class:`Batch` lists of at most ``batch_size`` and puts each list as one value into
an in-memory Faust channel, which a Faust agent iterates. After the agent has processed a batch
(its state writes queued, rule 1), it calls :meth:`HandOffConsumer.ack_batch`, which does in one
pass what Faust's ``ack`` does per message. Offsets are still committed only through
``_commit_offsets``, after ``before_commit`` has awaited every queued state write. A rebalance
must not finish while a batch is being processed: :meth:`wait_empty` (awaited by Faust on
revocation, before its commit) first waits until every batch handed over has been acknowledged
or dropped (Faust's ``flow_control.clear()`` empties the channels' queues; a batch that is
garbage leaves the weak set), as Faust's own ``wait_empty`` waits for tracked messages.

Commits beside the loop (issue 15, p99 at 10,000 /s). The count-triggered commit (every
``broker_commit_every`` acknowledgements) runs in a task of its own (:meth:`HandOffConsumer._commit_soon`),
not in the loop: a commit waits for every queued state write's acknowledgement (rule 1), and
awaited in the loop it stopped fetching and handing over meanwhile. One runs at a time; the
commit of a revocation, an assignment or a stop waits for the one in flight and then commits
(:meth:`HandOffConsumer.commit_and_end_transactions`).

Fetches that wait for little (issue 27). aiokafka leaves a partition whose fetched records are
not all taken yet out of the next fetch request to its broker, and sends no other request to
that broker while one is in flight; Faust asks the broker to hold an empty fetch for 1.5 s
(``fetch_max_wait_ms=1500``). So when a fetch of 5,000 records (``broker_max_poll_records``)
left some of a contact partition behind, the next request asked only for the other partitions,
the facts among them, which stage 1 was waiting on that very contact partition to produce: the
broker held it for 1.5 s while the contacts piled up (traced at 8,000 /s: bursts of ~8,000
events processed, then ~1 s with nothing). The worker's fetches wait at most
``FETCH_MAX_WAIT_MS`` (:class:`FetchThread`); an idle worker sends 20 empty fetches a second.

Written against faust-streaming 0.15.3 with aiokafka 0.14.0 (tests/unit/test_faust_private_api.py
pins every private part used here: ``_drain_messages``, ``ack``, ``wait_empty``, ``_acked``,
``_acked_index``, ``_committed_offset``, ``_n_acked``, ``_waiting_for_ack``, ``getmany``,
``_wait_next_records``, ``commit``'s ``_commit_fut``, ``commit_and_end_transactions``,
``_new_consumer_thread``, ``_create_worker_consumer``, and aiokafka's ``_fetch_max_wait_ms``).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

from streams import killpoints
from streams.faust_ext.internals import recovery_position


class Batch:
    """Messages of one or more fetches, for one agent, in fetch order; handed over as one channel
    value. Until its agent takes it (:meth:`take`), later fetches' messages for the same agent
    join it rather than queue behind it as batches of their own (issue 27): an agent that falls
    behind then takes fewer, larger batches, each paying its fixed cost (facts sends, state
    writes, a commit's share) once, and catches up instead of queueing small ones for seconds."""

    __slots__ = ("messages", "taken", "__weakref__")

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.taken = False

    def __len__(self) -> int:
        return len(self.messages)

    def take(self) -> list[Message]:
        """The messages to process: from now on none joins them."""
        self.taken = True
        return self.messages


def split(pending: Mapping[Any, list[Message]], size: int) -> list[tuple[Any, Batch]]:
    """One fetch's messages per channel, cut into batches of at most ``size``, in fetch order."""
    return [
        (channel, Batch(messages[i : i + size]))
        for channel, messages in pending.items()
        for i in range(0, len(messages), size)
    ]


async def _put(channel: Any, batch: Batch) -> None:
    """Put a batch into a full channel. Faust's ``flow_control.clear()`` on revocation empties the
    channel's queue and cancels the futures of its blocked puts (mode's ``ThrowableQueue.clear``):
    then the batch is dropped (fetched again after the rebalance's rewind), not the fetch loop
    cancelled, which Faust's fetcher would take for its own cancellation and crash the worker.
    Only a cancellation of this task itself (``wait_first`` ending it) propagates."""
    try:
        await channel.put(batch)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


#: how long the broker may hold a fetch that finds nothing new (Faust's is 1,500 ms): the longest
#: a partition left out of the request in flight waits for the next one (above)
FETCH_MAX_WAIT_MS = 50


class FetchThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer fetches with ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start(), which builds the Fetcher
        return consumer


class HandOffConsumer(Consumer):
    #: awaited before offsets are committed (Faust then flushes its producer and commits): the
    #: worker finishes writing the state of every event it acknowledged there
    before_commit: Callable[[], Awaitable[None]] | None = None
    #: the rebalance (``app.rebalancing_count``) after which the stream positions were rewound
    _rewound_for: int = 0
    #: the rebalance (``app.rebalancing_count``) whose assignment came last
    _assigned_for: int = 0
    #: topic name → the in-memory Faust channel its messages are handed to in batches
    batch_channels: Mapping[str, Any] = {}
    batch_size: int = 1000
    #: batches handed over and not yet acknowledged or dropped (a batch dropped unprocessed, e.g.
    #: by flow_control.clear(), is garbage and leaves the set by itself)
    _in_hand: weakref.WeakSet[Batch]

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return FetchThread(self, loop=self.loop, beacon=self.beacon)

    def batches_in_hand(self) -> int:
        in_hand = self.__dict__.get("_in_hand")
        return len(in_hand) if in_hand is not None else 0

    def ack_batch(self, batch: Batch, processed: Iterable[Message]) -> int:
        """A batch is done: acknowledge the messages of it that were processed, what Faust's
        ``ack`` does per message, in one pass. The others (skipped: of an earlier generation, or
        handed over before a rebalance suspended the flow) move no offset and are fetched again
        after the rebalance's rewind; a message of an earlier generation moves none either (see
        ``ack``). Returns how many offsets became committable."""
        self.__dict__.get("_in_hand", set()).discard(batch)
        generation = self.app.consumer_generation_id
        committed_of = self._committed_offset
        acked, acked_index = self._acked, self._acked_index
        n = 0
        with ack_lock:
            for message in processed:
                if message.acked:
                    continue
                message.acked = True
                if message.generation_id != generation:
                    continue
                tp, offset = message.tp, message.offset
                committed = committed_of[tp]
                if committed is None or offset >= committed:
                    index = acked_index[tp]
                    if offset not in index:
                        index.add(offset)
                        acked[tp].append(offset)
                        n += 1
            self._n_acked += n
            notify(self._waiting_for_ack)
        return n

    async def wait_empty(self) -> None:
        """Faust awaits this on revocation before it commits: every batch being processed is
        finished and acknowledged first (or dropped), then Faust's own wait for tracked messages."""
        while self.batches_in_hand() and not self.should_stop:
            gc.collect()  # batches dropped from a cleared queue may sit in a reference cycle
            if not self.batches_in_hand():
                break
            await self._wait_for_ack(timeout=1.0)  # ack_batch notifies it
        await super().wait_empty()

    async def _hand_over(self, batches: Iterable[tuple[Any, Batch]]) -> None:
        """Put each batch into its agent's channel, or into the batch handed over last to that
        channel while its agent has not taken it and there is room (``batch_size``); a full
        channel blocks the fetch loop (the back-pressure Faust's stream buffers give), but not
        past a suspension of the flow."""
        in_hand = self.__dict__.setdefault("_in_hand", weakref.WeakSet())
        # channel → (the batch put last, the rebalance it was put in): a rebalance empties the
        # channels (flow_control.clear()), and a batch dropped there must not take messages
        tails: dict[Any, tuple[weakref.ReferenceType[Batch], int]] = self.__dict__.setdefault("_tails", {})
        rebalance = self.app.rebalancing_count
        for channel, batch in batches:
            ref, put_in = tails.get(channel, (None, -1))
            tail = ref() if ref is not None and put_in == rebalance else None
            if tail is not None and not tail.taken and len(tail) + len(batch) <= self.batch_size:
                tail.messages.extend(batch.messages)  # queued, not taken: the agent gets them with it
                continue
            in_hand.add(batch)
            tails[channel] = (weakref.ref(batch), rebalance)
            await self.wait_first(_put(channel, batch), self.suspend_flow.wait())

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self._assigned_for = self.app.rebalancing_count
        await super().on_partitions_assigned(assigned, generation_id)

    def _settled(self, rebalance: int) -> bool:
        """No rebalance runs: the last one begun (``rebalance``, ``rebalancing_count`` read
        before the flag) has had its assignment (an earlier rebalance's recovery can end after a
        later one's revocation), and Faust has ended it."""
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
            try:
                await self.seek_wait(seeks)
            except Exception as exc:  # e.g. revoked meanwhile: the next recovery seeks it itself
                self.log.warning("seeking changelog partitions back failed (%r)", exc)

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

    #: the commit the fetch loop asked for, running beside it (at most one: see _commit_soon)
    _committer: asyncio.Future[None] | None = None
    #: acknowledgements reached the count again while that commit ran: it commits once more
    _commit_again: bool = False

    def _commit_soon(self) -> None:
        """The fetch loop's count-triggered commit (``broker_commit_every`` acknowledgements),
        started beside the loop instead of awaited in it. A commit awaits the acknowledgement of
        every state write queued so far (rule 1), tens to hundreds of milliseconds at 10,000
        events/s; awaited in the loop, fetching and handing over stopped meanwhile, and in 2 of 3
        loaded runs the loop fell far behind (docs/performance-history.md, "The commit beside the
        fetch loop").
        Rule 1 is unchanged: a commit picks the offsets acknowledged when it starts, whose state
        writes are queued by then (an agent queues them before ``ack_batch``), and
        ``_commit_offsets`` awaits them all before committing. One commit runs at a time; a
        request while one runs makes it commit once more when it ends."""
        self._n_acked = 0
        committer = self._committer
        if committer is not None and not committer.done():
            self._commit_again = True
            return
        self._committer = asyncio.ensure_future(self._commit_in_background())

    async def _commit_in_background(self) -> None:
        try:
            while True:
                self._commit_again = False
                await self._commit_after_any()
                if not self._commit_again or self.should_stop:  # stopping: Faust's on_stop commits
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # what a failure of the commit awaited in the loop did: end the consumer
            if isinstance(exc, self.consumer_stopped_errors) and self.app.should_stop:
                return  # the worker is stopping (as the loop treats it); Faust's on_stop commits
            self.log.exception("Commit raised: %r", exc)
            await self.crash(exc)

    async def _commit_after_any(self, start_new_transaction: bool = True) -> bool:
        """Commit every offset acknowledged by now. Faust's ``commit`` returns without
        committing when another commit is in flight (it waits for that one, whose offsets were
        picked when it began); here the in-flight one is awaited first, then a commit is made.
        (Not through Faust's ``maybe_wait_for_commit_to_finish``: it swallows a cancellation of
        the waiting task.)"""
        while (in_flight := self._commit_fut) is not None:
            await in_flight  # Faust's commit() resolves it when it ends, and clears the attribute
        return await self.commit(start_new_transaction=start_new_transaction)

    async def commit_and_end_transactions(self) -> None:
        """Faust's commit on revocation (after ``wait_empty``), on assignment and on stop: it must
        cover every batch acknowledged by then, also when the fetch loop's commit (or Faust's
        timer's) is in flight, which Faust's own would wait for and then skip its own."""
        await self._commit_after_any(start_new_transaction=False)

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
        channel_for = self.batch_channels.get
        batch_size = self.batch_size
        settled = self._settled
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                rebalance = app.rebalancing_count  # first: the thread sets rebalancing, then this
                if settled(rebalance) and self._rewound_for != rebalance:
                    await self._rewind_once(rebalance)  # also when nothing is left to fetch: it was discarded
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                pending: dict[Any, list[Message]] = {}
                looked_at: dict[Any, int] = {}  # changelog partition -> last offset handled or skipped
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    if tp.topic not in changelogs:  # recovery reads the changelogs meanwhile
                        rebalance = app.rebalancing_count  # before rebalancing (as above)
                        if not settled(rebalance):
                            continue  # Faust empties the streams' queues when it ends: not handed over
                        if self._rewound_for != rebalance:
                            await self._rewind_once(rebalance)
                            pending.clear()
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
                    channel = channel_for(tp.topic)
                    if channel is not None:  # batch hand-off: collected now, handed over below
                        pending.setdefault(channel, []).append(message)
                        set_read_offset(tp, offset)
                        continue
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._commit_soon()
                    if suspended():
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    else:
                        await callback(message)
                        if message.generation_id != app.consumer_generation_id:
                            break
                    set_read_offset(tp, offset)
                await self._refetch_changelogs(looked_at)
                # a rebalance began meanwhile: dropped, fetched again after its rewind (the count is
                # read before the flag, as above)
                rebalance = app.rebalancing_count
                if pending and settled(rebalance) and not (suspended() or self._rewound_for != rebalance):
                    await self._hand_over(split(pending, batch_size))
                if commit_every is not None and self._n_acked >= commit_every:
                    self._commit_soon()
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


def install(
    app: Any,
    before_commit: Callable[[], Awaitable[None]],
    batch_channels: Mapping[str, Any] | None = None,
    batch_size: int = 1000,
) -> None:
    """Make ``app`` create its consumer from :class:`HandOffConsumer` (before the app starts);
    messages of the topics in ``batch_channels`` are handed to those channels in batches."""
    app.transport.Consumer = type(
        "HandOffConsumer",
        (HandOffConsumer,),
        {
            "__module__": __name__,  # else ABCMeta's ("abc"): its log lines would come from logger "abc"
            "before_commit": staticmethod(before_commit),
            "batch_channels": dict(batch_channels or {}),
            "batch_size": batch_size,
        },
    )
