"""The ordered state-write/commit protocol (streams/worker/state_writer.py) against a fake
changelog producer whose deliveries the test acknowledges by hand: the three ordering rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.worker.state_writer import StateWriter


class FakeChangelog:
    """Records the order writes are queued in; each delivery resolves when the test says so."""

    def __init__(self) -> None:
        self.queued: list[str] = []
        self.deliveries: dict[str, asyncio.Future[Any]] = {}

    async def write(self, partition: int, key: str, value: bytes | None) -> asyncio.Future[Any]:
        self.queued.append(key)
        sent = self.deliveries[key] = asyncio.get_running_loop().create_future()
        return sent


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def run(coro: Any) -> None:
    asyncio.run(coro)


def test_rule_1_a_batch_s_state_is_queued_only_once_its_facts_are_acknowledged():
    async def scenario() -> None:
        writer, log = StateWriter(), FakeChangelog()
        fact_ack = asyncio.get_running_loop().create_future()
        writer.after_acks([fact_ack], log, [(0, "c|voice|c1", b"[1]"), (0, "m|cc.calls|0", b"[2]")])
        await settle()
        assert log.queued == []  # the facts are not acknowledged: no state may reach the changelog
        fact_ack.set_result("ok")
        await settle()
        assert log.queued == ["c|voice|c1", "m|cc.calls|0"]  # in the batch's order, watermark last

    run(scenario())


def test_rule_2_batches_write_their_state_in_batch_order_whatever_order_their_facts_are_acknowledged_in():
    async def scenario() -> None:
        writer, log = StateWriter(), FakeChangelog()
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        writer.after_acks([first], log, [(0, "batch-1", b"1")])
        writer.after_acks([second], log, [(0, "batch-2", b"2")])
        second.set_result("ok")  # the later batch's facts are acknowledged first
        await settle()
        assert log.queued == []  # it still waits for the earlier batch
        first.set_result("ok")
        await settle()
        assert log.queued == ["batch-1", "batch-2"]

    run(scenario())


def test_rule_3_a_commit_waits_for_every_state_write_and_none_goes_past_a_failed_one():
    async def scenario() -> None:
        writer, log = StateWriter(), FakeChangelog()
        loop = asyncio.get_running_loop()
        fact_ack = loop.create_future()
        writer.after_acks([fact_ack], log, [(0, "c|voice|c1", b"1")])
        await writer.write_now(log, 1, "t|q|voice", b"2")  # stage 2's write: no facts to wait for
        commit = asyncio.ensure_future(writer.written())
        await settle()
        assert not commit.done()  # the facts are not acknowledged yet, so neither is the state
        fact_ack.set_result("ok")
        await settle()
        assert not commit.done() and log.queued == ["t|q|voice", "c|voice|c1"]
        log.deliveries["t|q|voice"].set_result("ok")
        await settle()
        assert not commit.done()  # one write is still unacknowledged
        log.deliveries["c|voice|c1"].set_result("ok")
        await asyncio.wait_for(commit, 5)  # every write acknowledged: the commit may go ahead

        await writer.write_now(log, 0, "lost", b"3")
        log.deliveries["lost"].set_exception(ConnectionError("batch expired"))
        with pytest.raises(ConnectionError):
            await writer.written()
        with pytest.raises(ConnectionError):  # and every later commit too: none goes past it
            await writer.written()

    run(scenario())


def test_rule_3_a_batch_whose_facts_failed_aborts_the_commit():
    async def scenario() -> None:
        writer, log = StateWriter(), FakeChangelog()
        fact_ack = asyncio.get_running_loop().create_future()
        writer.after_acks([fact_ack], log, [(0, "c|voice|c1", b"1")])
        fact_ack.set_exception(ConnectionError("facts not delivered"))
        with pytest.raises(ConnectionError):
            await writer.written()
        assert log.queued == []  # and its state was never written

    run(scenario())
