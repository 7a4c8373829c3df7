"""The fetch loop's count-triggered commit runs beside the loop (issue 15, p99 at 10,000 /s;
streams/faust_ext/consumer.py ``_commit_soon``), without a broker: fetching and handing over go
on while a commit waits for the state writes it covers, a commit never covers an offset whose
state write is not acknowledged (rule 1, with the real StateWriter and Faust's own commit path
down to the broker call), one commit runs at a time, and the commit of a revocation covers every
batch acknowledged by then even while another commit is in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

from streams.faust_ext.consumer import Batch, HandOffConsumer
from streams.worker.state_writer import StateWriter
from tests.unit.helpers_fetch import CALLS0, consumer, message, still

StateWrite = asyncio.Future


class Agent:
    """Stage 1 as the fetch loop sees it: for each batch put into its channel it queues a state
    write (acknowledged when the test resolves its delivery future) and then acknowledges the
    batch, in that order, as the real agents do (docs/architecture.md, rule 1)."""

    def __init__(self, c: HandOffConsumer, writer: StateWriter) -> None:
        self.c, self.writer = c, writer
        self.deliveries: dict[int, StateWrite] = {}  # last offset of a batch -> its state write
        self.batches: list[list[int]] = []

    async def write(self, partition: int, key: str, value: bytes | None) -> Awaitable[Any]:
        delivery: StateWrite = asyncio.get_running_loop().create_future()
        self.deliveries[int(key)] = delivery
        return delivery

    async def put(self, batch: Batch) -> None:
        offsets = [m.offset for m in batch.messages]
        self.batches.append(offsets)
        await self.writer.write_now(self, 0, str(offsets[-1]), b"state")
        self.c.ack_batch(batch, batch.messages)


def committing(fetches: list, commit_every: int = 1) -> tuple[HandOffConsumer, Agent, list[dict]]:
    """A scripted consumer (tests/unit/helpers_fetch.py) with Faust's real commit path: ``commit``
    → ``force_commit`` → ``_new_offset`` → ``_commit_offsets`` (ccmon's, awaiting the StateWriter)
    → Faust's, whose broker call ``_commit`` records the offsets. Every committed offset is checked
    against the state writes acknowledged at that moment."""
    c, app, *_ = consumer(fetches)
    writer = StateWriter()
    agent = Agent(c, writer)
    committed: list[dict] = []

    async def nothing_attached(tp: Any, offset: int) -> list:
        return []

    async def flushed() -> None:
        return None

    async def broker_commit(offsets: dict) -> bool:
        for offset in offsets.values():  # offset = the next to read: offset - 1 was processed
            written = [d for last, d in agent.deliveries.items() if last < offset]
            assert all(d.done() for d in written), f"commit of {offset} ahead of its state write"
        committed.append(dict(offsets))
        return True

    async def crash(exc: BaseException) -> None:  # a test that expects one replaces it
        raise exc

    app.client_only = False
    app.sensors = SimpleNamespace(on_commit_initiated=lambda c: None, on_commit_completed=lambda c, s: None)
    app._attachments = SimpleNamespace(publish_for_tp_offset=nothing_attached)
    app.producer = SimpleNamespace(flush=flushed)
    app.tables.on_commit = lambda offsets: None
    app.monitor = SimpleNamespace(on_tp_commit=lambda offsets: None)
    c.__dict__.update(
        batch_channels={"calls": agent},
        before_commit=writer.written,
        _commit_every=commit_every,
        _commit=broker_commit,
        in_transaction=False,
        diag=SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None),
        assignment=lambda: {CALLS0},
        crash=crash,
        log=SimpleNamespace(
            **{level: lambda *a, **k: None for level in ("dev", "info", "warning", "exception")}
        ),
    )
    return c, agent, committed


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def test_the_loop_fetches_and_hands_over_while_a_commit_waits_for_the_state_writes():
    c, agent, committed = committing([(still, [(CALLS0, 0), (CALLS0, 1)]), (still, [(CALLS0, 2)])])

    async def main() -> None:
        c.__dict__["_loop"] = asyncio.get_running_loop()
        await asyncio.wait_for(c._drain_messages(SimpleNamespace(_stopped=asyncio.Event())), 5)
        # both fetches were handed over while the first fetch's commit waits for its state write
        assert agent.batches == [[0, 1], [2]]
        assert c._committer is not None and not c._committer.done()
        assert committed == []
        agent.deliveries[1].set_result(None)
        await asyncio.wait_for(c._committer, 5)
        # the second batch's state write is still unacknowledged: nothing covers offset 2
        assert not agent.deliveries[2].done()

    asyncio.run(main())
    # what was acknowledged when the commit began; the second batch's acknowledgement asked for
    # another commit, but the loop had stopped: the consumer's stop commits (Faust's on_stop)
    assert committed == [{CALLS0: 2}]


def test_one_commit_at_a_time_and_one_more_for_what_was_acknowledged_meanwhile():
    c, agent, committed = committing([])
    in_flight: list[int] = []
    broker_commit = c._commit

    async def slow_broker_commit(offsets: dict) -> bool:
        in_flight.append(1)
        assert len(in_flight) == 1, "two commits at once"
        await asyncio.sleep(0.01)
        in_flight.pop()
        return await broker_commit(offsets)

    c.__dict__["_commit"] = slow_broker_commit

    async def batch(offsets: list[int]) -> None:
        await agent.put(Batch([message(CALLS0, o, 1) for o in offsets]))

    async def main() -> None:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        await batch([0, 1])
        c._commit_soon()
        first = c._committer
        for offsets in ([2], [3, 4], [5]):  # acknowledged while the first commit waits
            await settle()
            await batch(offsets)
            c._commit_soon()
            assert c._committer is first  # no second commit started beside it
        assert c._n_acked == 0  # the count starts again with each request
        for delivery in list(agent.deliveries.values()):
            delivery.set_result(None)
        assert first is not None
        await asyncio.wait_for(first, 5)

    asyncio.run(main())
    # the first commit covers what was acknowledged when it began (offsets 0-1), the one more
    # covers everything acknowledged while it ran
    assert committed == [{CALLS0: 2}, {CALLS0: 6}]


def test_the_revocation_commit_waits_for_the_commit_in_flight_then_commits_the_rest():
    c, agent, committed = committing([])

    async def main() -> None:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        await agent.put(Batch([message(CALLS0, 0, 1)]))
        c._commit_soon()
        await settle()  # the background commit took offset 0 and waits for its state write
        await agent.put(Batch([message(CALLS0, 1, 1)]))  # the last batch before the revocation
        revocation = asyncio.ensure_future(c.commit_and_end_transactions())
        await settle()
        assert not revocation.done() and committed == []
        for delivery in list(agent.deliveries.values()):
            delivery.set_result(None)
        await asyncio.wait_for(revocation, 5)
        assert c._committer is not None and c._committer.done()

    asyncio.run(main())
    # Faust's own commit would have waited for the one in flight and then returned without
    # committing offset 1
    assert committed == [{CALLS0: 1}, {CALLS0: 2}]


def test_a_failed_commit_ends_the_consumer_as_one_in_the_loop_did():
    c, agent, committed = committing([])
    crashed: list[BaseException] = []

    async def failing_broker_commit(offsets: dict) -> bool:
        raise RuntimeError("the broker said no")

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    c.__dict__.update(_commit=failing_broker_commit, crash=crash)
    c.__dict__["log"].exception = lambda *a: None

    async def main() -> None:
        c.__dict__.update(_loop=asyncio.get_running_loop(), _stopped=asyncio.Event())
        await agent.put(Batch([message(CALLS0, 0, 1)]))
        agent.deliveries[0].set_result(None)
        c._commit_soon()
        assert c._committer is not None
        await asyncio.wait_for(c._committer, 5)

    asyncio.run(main())
    assert [str(e) for e in crashed] == ["the broker said no"] and committed == []
