"""The consumer hands no stream message over while a rebalance runs, and rewinds every stream
partition once after it (streams/faust_ext/consumer.py; issue 10's remaining loss).

Faust empties the streams' queues when recovery ends, after it has resumed and sought the stream
partitions: whatever was handed over in between was lost with the fetch position past it. These
drive the consumer's fetch loop with scripted fetches; tests/integration/test_recovery_race.py
shows the loss, and its absence, on a real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from streams.faust_ext.consumer import HandOffConsumer
from tests.unit.helpers_fetch import CHANGELOG, TP, fake_app, run, scripted, still

CALLS0, CALLS1, CALLS2, LOG0 = (
    TP(topic="calls", partition=0),
    TP(topic="calls", partition=1),
    TP(topic="calls", partition=2),
    TP(topic=CHANGELOG, partition=0),
)


def consumer(fetches: list) -> tuple[HandOffConsumer, list, list]:
    """A consumer whose fetches are scripted (tests/unit/helpers_fetch.py), every message handed
    over through Faust's per-message callback."""
    app = fake_app(rebalancing=True, rebalancing_count=1)
    handed: list = []
    rewinds: list = []

    async def callback(message: Any) -> None:
        handed.append((message.topic, message.offset))

    async def rewind() -> None:
        rewinds.append(app.rebalancing_count)

    def message(tp: Any, offset: int, app: Any) -> Any:
        return SimpleNamespace(offset=offset, topic=tp.topic, generation_id=app.consumer_generation_id)

    return scripted(fetches, app, message, callback=callback, _rewind=rewind), handed, rewinds


def ended(count: int):
    def step(app: Any) -> None:
        app.rebalancing, app.rebalancing_count = False, count

    return step


def test_nothing_of_the_streams_is_handed_over_during_a_rebalance_and_all_is_fetched_again_after_it():
    c, handed, rewinds = consumer(
        [
            (still, [(LOG0, 0), (CALLS0, 0), (CALLS0, 1), (LOG0, 1)]),  # recovery: its changelog only
            (ended(1), []),  # the rebalance has ended; nothing left to fetch (it was all discarded)
            (still, [(CALLS0, 0), (CALLS0, 1)]),  # fetched again after the rewind
        ]
    )
    run(c)
    assert handed == [(CHANGELOG, 0), (CHANGELOG, 1), ("calls", 0), ("calls", 1)]
    assert rewinds == [1]  # once, before the first stream message of the new assignment


def test_a_fetch_that_straddles_the_end_of_a_rebalance_is_dropped_after_the_rewind():
    c, handed, rewinds = consumer(
        [
            (still, [(CALLS0, 5)]),
            # the rebalance ends after the loop's check, before this fetch's first message
            (ended(1), [(CALLS0, 6), (CALLS1, 7)]),  # fetched before the rewind: dropped
            (still, [(CALLS0, 5), (CALLS0, 6), (CALLS1, 7)]),
        ]
    )
    run(c)
    assert handed == [("calls", 5), ("calls", 6), ("calls", 7)] and rewinds == [1]


def test_every_rebalance_rewinds_once():
    def began(count: int):
        def step(app: Any) -> None:
            app.rebalancing, app.rebalancing_count = True, count

        return step

    c, handed, rewinds = consumer(
        [
            (ended(1), []),
            (still, [(CALLS0, 0)]),
            (began(2), [(CALLS0, 1)]),  # revoked meanwhile: discarded
            (ended(2), []),
            (still, [(CALLS0, 1)]),
        ]
    )
    run(c)
    assert handed == [("calls", 0), ("calls", 1)] and rewinds == [1, 2]


def test_the_rewind_seeks_to_the_committed_offset_or_else_to_the_beginning():
    c = HandOffConsumer.__new__(HandOffConsumer)
    sought: list = []

    async def seek_to_committed() -> dict:  # Faust seeks those committed at an offset > 0 itself
        return {CALLS0: 120, CALLS1: None, CALLS2: 0, LOG0: None}

    async def seek_wait(partitions: dict) -> None:
        sought.append(dict(partitions))

    c.__dict__.update(
        seek_to_committed=seek_to_committed,
        seek_wait=seek_wait,
        _read_offset=defaultdict[TP, int | None](lambda: None, {CALLS0: 300, CALLS1: 40, LOG0: 9}),
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics={CHANGELOG})),
    )
    c._is_changelog_tp = lambda tp: tp.topic == CHANGELOG  # type: ignore[method-assign]
    asyncio.run(HandOffConsumer._rewind(c))
    assert sought == [{CALLS1: 0, CALLS2: 0}]
    assert c._read_offset[CALLS0] is None and c._read_offset[CALLS1] is None and c._read_offset[LOG0] == 9


class ThreadStartsARebalance:
    """The app as the fetch loop sees it while Faust's consumer thread runs beside it: once armed,
    the thread starts the next rebalance (``App.on_rebalance_start``: ``rebalancing`` set, then
    ``rebalancing_count`` incremented) right after the loop has read ``rebalancing`` as False."""

    _rebalancing: bool
    armed: bool
    rebalancing_count: int
    consumer_generation_id: int

    def __init__(self, app: Any) -> None:
        self.__dict__.update(vars(app), _rebalancing=app.rebalancing, armed=False)

    @property
    def rebalancing(self) -> bool:
        value = self._rebalancing
        if self.armed and not value:
            self.armed = False
            self._rebalancing = True
            self.rebalancing_count += 1
        return value

    @rebalancing.setter
    def rebalancing(self, value: bool) -> None:
        self._rebalancing = value


@pytest.mark.parametrize("first_read", ["before a fetch", "at a fetched message"])
def test_a_rebalance_begun_between_the_loops_two_reads_is_rewound_for_when_it_ends(first_read: str):
    """The worker that sat idle with unread messages (issue 10): the loop saw no rebalance, the
    thread began one before the loop read the count, and the rewind done during its revocation
    was booked for it, so what the loop dropped while it ran was never fetched again. Here the
    fetch position is modelled: a fetch moves it past what it returns, a rewind moves it back."""
    log = [(CALLS0, 0), (CALLS0, 1), (CALLS0, 2)]
    c, handed, _ = consumer([])
    app = c.__dict__["app"] = ThreadStartsARebalance(c.app)
    position = 0

    def arm(step: Any) -> Any:
        def armed(app: Any) -> None:
            step(app)
            app.armed = True

        return armed

    first = 0 if first_read == "before a fetch" else 2  # messages fetched with the armed step
    steps = iter([(arm(ended(1)), first), (still, 2), (ended(2), 1), (still, 2), (still, 2)])
    rewinds: list = []

    async def getmany(timeout: float) -> Any:
        nonlocal position
        step = next(steps, None)
        if step is None:
            c._stopped.set()
            return
        before, n = step
        before(app)
        if not app._rebalancing:  # an ended rebalance has had its assignment
            c._assigned_for = app.rebalancing_count
        fetched, position = log[position : position + n], min(len(log), position + n)
        for tp, offset in fetched:
            yield tp, SimpleNamespace(offset=offset, topic=tp.topic, generation_id=app.consumer_generation_id)

    async def rewind() -> None:
        nonlocal position
        position = 0  # nothing committed yet: from the beginning
        rewinds.append((app.rebalancing_count, app._rebalancing))

    c.__dict__.update(getmany=getmany, _rewind=rewind)
    run(c)
    assert rewinds[-1] == (2, False)  # after rebalance 2 has ended
    assert handed == [("calls", 0), ("calls", 1), ("calls", 2)]  # none skipped
