"""Batch hand-off (issue 15, streams/faust_ext/consumer.py), without a broker: the fetch loop hands
each fetch's messages of the inputs and the facts to their agents' channels as whole batches, and
``ack_batch`` acknowledges in one pass exactly the messages an agent processed, so that Faust's
own offset arithmetic (``_new_offset``, unchanged) never commits past one it did not.
tests/integration (crash, rebalance, recovery race, two workers) prove it on a real broker."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from streams.faust_ext.consumer import Batch, HandOffConsumer, split
from tests.unit.helpers_fetch import CALLS0, CALLS1, CHANGELOG, FACTS0, LOG0, consumer, message, run, still


def began(app: Any) -> None:
    """A scripted fetch's step: the first rebalance begins."""
    app.rebalancing, app.rebalancing_count = True, 1


def ended(app: Any) -> None:
    """A scripted fetch's step: Faust ends the rebalance (its recovery done)."""
    app.rebalancing = False


def test_each_fetch_is_handed_over_as_batches_per_agent_in_fetch_order():
    c, app, inputs, facts, per_message = consumer(
        [
            (
                still,
                [(CALLS0, 0), (FACTS0, 0), (CALLS1, 0), (LOG0, 7), (CALLS0, 1), (CALLS0, 2), (FACTS0, 1)],
            ),
            (still, [(CALLS1, 1)]),
        ],
        batch_size=2,
    )
    run(c)
    assert inputs.batches == [
        [("calls", 0, 0), ("calls", 1, 0)],
        [("calls", 0, 1), ("calls", 0, 2)],
        [("calls", 1, 1)],
    ]
    assert facts.batches == [[("facts", 0, 0), ("facts", 0, 1)]]
    assert per_message == [(CHANGELOG, 7)]  # what is not batched still goes through Faust's path
    assert c._read_offset[CALLS0] == 2 and c._read_offset[CALLS1] == 1 and c._read_offset[FACTS0] == 1
    assert c.batches_in_hand() == 4  # the channel keeps them: none acknowledged yet
    assert c._n_acked == 0 and not c._acked  # handing over acknowledges nothing


def test_nothing_is_handed_over_from_a_fetch_during_which_a_rebalance_began():
    c, app, inputs, facts, per_message = consumer(
        [
            (still, [(CALLS0, 0)]),
            (began, [(CALLS0, 1), (LOG0, 0)]),  # the stream message is skipped, the changelog read
            (ended, [(CALLS0, 1), (CALLS0, 2)]),  # rewound first, so this fetch is dropped
            (still, [(CALLS0, 1), (CALLS0, 2)]),
        ]
    )
    run(c)
    assert inputs.batches == [[("calls", 0, 0)], [("calls", 0, 1), ("calls", 0, 2)]]
    assert per_message == [(CHANGELOG, 0)]


def test_what_a_fetch_collected_before_a_rebalance_began_in_it_is_dropped():
    def new_generation(app: Any) -> None:
        app.rebalancing, app.rebalancing_count, app.consumer_generation_id = True, 2, 2

    c, app, inputs, facts, per_message = consumer(
        [
            (still, [(CALLS0, 0), began, (LOG0, 0)]),  # collected, then the rebalance began: dropped
            (ended, [(CALLS0, 0), (CALLS0, 1)]),  # rewound at its first message: dropped
            (still, [(CALLS0, 0), new_generation]),  # began and ...
            (ended, [(CALLS0, 0)]),  # ... ended between two fetches: rewound, dropped
            (still, [(CALLS0, 0), (CALLS0, 1)]),
        ]
    )
    run(c)
    assert inputs.batches == [[("calls", 0, 0), ("calls", 0, 1)]]


def test_split_cuts_per_channel_in_order():
    a, b = object(), object()
    m = [message(CALLS0, offset, 1) for offset in range(4)]
    batches = split({a: m[:3], b: m[3:]}, 2)
    assert [(ch, x.messages) for ch, x in batches] == [(a, m[:2]), (a, m[2:3]), (b, m[3:])]


def acked_consumer(committed: dict | None = None) -> HandOffConsumer:
    c, app, *_ = consumer()
    c._committed_offset.update(committed or {})
    return c


def test_ack_batch_acknowledges_exactly_the_processed_messages():
    c = acked_consumer()
    gen1 = [message(CALLS0, o, 1) for o in range(5)]
    batch = Batch(gen1)
    c.__dict__["_in_hand"] = weakref.WeakSet([batch])
    processed = [m for m in gen1 if m.offset != 3]  # offset 3 was not processed (e.g. skipped)
    assert c.ack_batch(batch, processed) == 4
    assert c._n_acked == 4 and c.batches_in_hand() == 0
    assert sorted(c._acked[CALLS0]) == [0, 1, 2, 4]
    # Faust's own arithmetic then commits up to the hole, not past it
    assert HandOffConsumer._new_offset(c, CALLS0) == 3
    assert all(m.acked for m in processed) and not gen1[3].acked


def test_ack_batch_moves_no_offset_for_an_earlier_generation_or_below_the_commit():
    c = acked_consumer({CALLS0: 10})
    old = [message(CALLS1, o, 0) for o in range(3)]  # fetched before a rebalance
    below = [message(CALLS0, o, 1) for o in (8, 9)]  # committed already
    again = [message(CALLS0, 10, 1), message(CALLS0, 10, 1)]  # the same offset twice: counted once
    assert c.ack_batch(Batch(old + below + again), old + below + again) == 1
    assert c._acked[CALLS0] == [10] and not c._acked[CALLS1]
    assert all(m.acked for m in old)  # nothing waits for them


def test_a_revocation_waits_for_the_batch_in_hand_until_it_is_acknowledged():
    c = acked_consumer()
    order: list[str] = []

    async def faust_wait_empty(self: Any) -> None:  # what Faust's own wait_empty would do next
        order.append("faust wait_empty")

    async def main() -> None:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        batch = Batch([message(CALLS0, 0, 1)])
        c.__dict__["_in_hand"] = weakref.WeakSet([batch])
        waiter = asyncio.ensure_future(c.wait_empty())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiter.done()  # the agent is still processing it
        order.append("acked")
        c.ack_batch(batch, batch.messages)
        await asyncio.wait_for(waiter, 5)

    base: Any = HandOffConsumer.__mro__[1]  # Faust's aiokafka Consumer
    original = base.wait_empty
    base.wait_empty = faust_wait_empty
    try:
        asyncio.run(main())
    finally:
        base.wait_empty = original
    assert order == ["acked", "faust wait_empty"]


def test_a_batch_dropped_unprocessed_does_not_hold_up_a_revocation():
    c = acked_consumer()
    c.__dict__["_in_hand"] = weakref.WeakSet()
    batch = Batch([message(CALLS0, 0, 1)])
    c._in_hand.add(batch)
    assert c.batches_in_hand() == 1
    del batch  # Faust's flow_control.clear() emptied the channel's queue: nothing holds it
    assert c.batches_in_hand() == 0


class FullChannel:
    """A channel whose queue is full: a put blocks, as Faust's channel put does on its
    FlowControlQueue, until ``clear`` cancels the blocked puts (mode's ThrowableQueue.clear, run by
    Faust's flow_control.clear() on revocation)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.queue.put_nowait("a batch the agent has not taken yet")

    async def put(self, batch: Batch) -> None:
        await self.queue.put(batch)

    def clear(self) -> None:
        self.queue._queue.clear()  # type: ignore[attr-defined]
        for putter in self.queue._putters:  # type: ignore[attr-defined]
            putter.cancel()


def test_a_revocation_that_clears_a_full_channel_drops_the_batch_and_keeps_the_fetch_loop_running():
    c = acked_consumer()

    async def main() -> str:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        channel = FullChannel()
        hand_over = asyncio.ensure_future(c._hand_over([(channel, Batch([message(CALLS0, 0, 1)]))]))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not hand_over.done()  # back-pressure: blocked on the full channel
        channel.clear()
        await asyncio.wait_for(hand_over, 5)  # returns: no CancelledError for Faust's fetcher
        return "returned"

    assert asyncio.run(main()) == "returned"
    assert c.batches_in_hand() == 0  # the dropped batch is garbage: it holds up no revocation


def test_the_fetch_loop_stops_waiting_on_a_full_channel_when_the_flow_is_suspended():
    c = acked_consumer()

    async def main() -> None:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        hand_over = asyncio.ensure_future(c._hand_over([(FullChannel(), Batch([message(CALLS0, 0, 1)]))]))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not hand_over.done()
        c.suspend_flow.set()  # Faust's consumer.stop_flow() on revocation
        await asyncio.wait_for(hand_over, 5)

    asyncio.run(main())


def test_a_rebalance_that_begins_before_the_previous_recovery_ends_rewinds_only_once_assigned():
    """Faust can end a rebalance's recovery (flag cleared, flow resumed) after the next one's
    revocation. Until that one's assignment has come, nothing is handed over and nothing rewound:
    rewound then, the positions of partitions with no committed offset would never be sought
    again, and what was handed over meanwhile (of the ending generation, skipped by the agents)
    never fetched again."""
    rewinds: list = []

    async def rewind() -> None:
        rewinds.append((app.rebalancing_count, app.consumer_generation_id))

    def revoked(app: Any) -> None:  # the next rebalance begins; its assignment is still to come
        app.rebalancing, app.rebalancing_count, app.held = True, 1, 0

    def previous_recovery_ended(app: Any) -> None:
        app.rebalancing = False

    def assigned(app: Any) -> None:  # generation 2; its recovery reads the changelog
        app.rebalancing, app.consumer_generation_id, app.held = True, 2, None

    c, app, inputs, facts, per_message = consumer(
        [
            (still, [(FACTS0, 0), (FACTS0, 1)]),
            (revoked, [(FACTS0, 2)]),
            (previous_recovery_ended, [(FACTS0, 2), (FACTS0, 3)]),  # not handed over
            (assigned, [(LOG0, 0)]),
            (ended, [(FACTS0, 2)]),  # rewound at its first message: dropped
            (still, [(FACTS0, 2), (FACTS0, 3)]),
        ]
    )
    c.__dict__["_rewind"] = rewind
    run(c)
    assert rewinds == [(1, 2)]  # once, after the assignment of the rebalance it is for
    assert facts.batches == [[("facts", 0, 0), ("facts", 0, 1)], [("facts", 0, 2), ("facts", 0, 3)]]
    assert [m.generation_id for m in facts.kept[1].messages] == [2, 2]
    assert per_message == [(CHANGELOG, 0)]


def test_later_fetches_join_the_batch_its_agent_has_not_taken_up_to_the_batch_size():
    """An agent behind the fetch loop gets fewer, larger batches (issue 27): each fetch's messages
    join the batch handed over last while it waits in the channel, up to the batch size; once
    the agent has taken it, the next fetch starts a batch of its own."""
    box: list[Any] = []

    def take_first(app: Any) -> None:
        box[0].kept[0].take()

    c, app, inputs, facts, _ = consumer(
        [
            (still, [(CALLS0, 0), (FACTS0, 0)]),
            (still, [(CALLS1, 0), (FACTS0, 1)]),  # both join: nothing taken yet
            (still, [(CALLS0, 1), (CALLS0, 2)]),  # no room left in the first (3 > 3 - 1): a new one
            (take_first, [(CALLS0, 3)]),  # the second was not taken: joins it (room for 1)
            (still, [(FACTS0, 2)]),
        ],
        batch_size=3,
    )
    box.append(inputs)
    run(c)
    assert inputs.batches == [
        [("calls", 0, 0), ("calls", 1, 0)],
        [("calls", 0, 1), ("calls", 0, 2), ("calls", 0, 3)],
    ]
    assert facts.batches == [[("facts", 0, 0), ("facts", 0, 1), ("facts", 0, 2)]]
    assert c.batches_in_hand() == 3  # one per batch put, however many fetches joined it


def test_a_batch_taken_is_joined_by_nothing_and_a_rebalance_ends_the_joining():
    """Once taken, a batch is what its agent processes: later messages start a new one. A batch
    put before a rebalance may have been dropped from the channel by it (flow_control.clear()),
    so nothing fetched after the rebalance joins it (it would never be processed)."""
    box: list[Any] = []

    def take_all(app: Any) -> None:
        for batch in box[0].kept:
            batch.take()

    c, app, inputs, facts, _ = consumer(
        [
            (still, [(CALLS0, 0)]),
            (take_all, [(CALLS0, 1)]),
            (began, [(CALLS0, 2)]),  # skipped: a rebalance began
            (ended, [(CALLS0, 2)]),  # rewound first, so this fetch is dropped
            (still, [(CALLS0, 2)]),  # the batch of offset 1, not taken, is of the earlier rebalance
        ],
        batch_size=10,
    )
    box.append(inputs)
    run(c)
    assert inputs.batches == [[("calls", 0, 0)], [("calls", 0, 1)], [("calls", 0, 2)]]
