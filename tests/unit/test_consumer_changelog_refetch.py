"""A changelog partition under recovery whose fetched records the fetch loop did not hand over
is sought back to where the recovery stands (streams/faust_ext/consumer.py).

The stall it prevents (tests/integration/test_rebalance.py in CI): a fetch begun before a
rebalance returns a newly assigned changelog partition's records after recovery has sought it to
its start but before recovery resumes the flow. Faust's ``getmany`` drops a fetch that returns
while the flow is stopped; the fetch position is then past records the recovery never got, and
it waits for them for ever. Here Faust's own ``getmany`` and ``_wait_next_records`` run over a
scripted driver fetch (``_getmany``) that models the fetch position."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from streams.faust_ext.consumer import HandOffConsumer

CHANGELOG = "app-ccmon-lifecycle-changelog"
LOG3 = TP(topic=CHANGELOG, partition=3)
RECORDS = 5  #: the changelog partition holds offsets 0..4


def stop_the_flow(c: HandOffConsumer) -> None:
    """The fetch returns after recovery's seek, before it resumes the flow."""
    c.flow_active = False


def flowing(c: HandOffConsumer) -> None:
    return None


def run(
    steps: list[Callable[[HandOffConsumer], None]],
    recovering: bool = True,
    start: int | None = 0,
    revoked: bool = False,
) -> tuple[list, list]:
    """Run the fetch loop over ``steps`` (one per fetch: run before it returns); returns the
    offsets handed over and the seeks made. ``start``: where recovery has sought the partition
    (None: not placed yet). ``revoked``: the partition is revoked before the loop seeks it back."""
    c = HandOffConsumer.__new__(HandOffConsumer)
    recovery = SimpleNamespace(
        active_tps={LOG3} if recovering else set(),
        active_offsets=Counter({LOG3: None if start is None else start - 1}),
        standby_tps=set(),
        standby_offsets=Counter(),
    )
    app = SimpleNamespace(
        rebalancing=True,
        rebalancing_count=1,
        consumer_generation_id=1,
        client_only=False,
        should_stop=False,
        tables=SimpleNamespace(changelog_topics={CHANGELOG}, recovery=recovery),
        topics=SimpleNamespace(acks_enabled_for=lambda topic: False),
        monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
    )
    position = {LOG3: start or 0}
    script = iter(steps)
    handed: list = []
    sought: list = []

    async def _getmany(active_partitions: Any, timeout: float) -> dict:
        step = next(script, None)
        if step is None:
            c._stopped.set()
            return {}
        step(c)
        records = [SimpleNamespace(offset=o) for o in range(position[LOG3], RECORDS)]
        position[LOG3] = RECORDS  # a fetch moves the position past what it returns
        return {LOG3: records} if records else {}

    async def seek_wait(partitions: dict) -> None:
        sought.append(dict(partitions))
        if revoked:  # aiokafka: "No current assignment for partition"
            raise RuntimeError("no current assignment")
        position.update(partitions)

    async def wait_for_flow(event: Any) -> None:  # recovery resumes the flow
        c.flow_active = True

    async def callback(message: Any) -> None:
        handed.append(message.offset)

    async def perform_seek() -> None:  # Faust seeks the stream partitions back; changelogs have no commit
        return None

    c.__dict__.update(
        app=app,
        callback=callback,
        _getmany=_getmany,
        seek_wait=seek_wait,
        wait=wait_for_flow,
        perform_seek=perform_seek,
        _to_message=lambda tp, r: SimpleNamespace(offset=r.offset, topic=tp.topic, generation_id=1),
        highwater=lambda tp: RECORDS,
        scheduler=DefaultSchedulingStrategy(),  # type: ignore[abstract]  # Faust's ABC declares __init__
        flow_active=True,
        can_resume_flow=asyncio.Event(),
        not_waiting_next_records=asyncio.Event(),
        suspend_flow=asyncio.Event(),
        _active_partitions={LOG3},
        _paused_partitions=set(),
        _buffered_partitions=set(),
        _stopped=asyncio.Event(),
        _crashed=asyncio.Event(),
        _read_offset=defaultdict(lambda: None),
        _commit_every=None,
        _n_acked=0,
        log=SimpleNamespace(**{level: lambda *a: None for level in ("dev", "info", "warning", "exception")}),
    )
    asyncio.run(c._drain_messages(SimpleNamespace(_stopped=asyncio.Event())))
    return handed, sought


def test_changelog_records_returned_while_the_flow_is_stopped_are_fetched_again_from_the_recoverys_start():
    handed, sought = run([stop_the_flow, flowing])
    assert sought == [{LOG3: 0}]
    assert handed == [0, 1, 2, 3, 4]  # none lost: the recovery reaches the partition's end


def test_the_refetch_starts_where_the_recovery_stands_not_at_the_dropped_fetch():
    """Recovery had restored offsets up to 2 (e.g. from a snapshot) and sought to 2, as
    ``Recovery._seek_offsets`` does; it is sought there again."""
    handed, sought = run([stop_the_flow, flowing], start=3)
    assert sought == [{LOG3: 2}] and handed == [2, 3, 4]


def test_a_fetch_handed_over_whole_is_not_fetched_again():
    handed, sought = run([flowing, flowing])
    assert sought == [] and handed == [0, 1, 2, 3, 4]


def test_a_changelog_partition_no_recovery_reads_is_left_alone():
    """After recovery, or before it has taken the partition on: its own seek places it."""
    handed, sought = run([stop_the_flow, flowing], recovering=False)
    assert sought == [] and handed == []


def test_a_changelog_partition_recovery_has_not_placed_yet_is_left_to_its_own_seek():
    """Recovery reads the store's persisted offset (None when it has none) before it builds its
    offsets and seeks: until then there is no position to go back to."""
    handed, sought = run([stop_the_flow, flowing], start=None)
    assert sought == [] and handed == []


def test_a_partition_revoked_before_it_is_sought_back_does_not_stop_the_loop():
    """A rebalance can revoke the partition between the fetch and the seek (aiokafka then
    refuses the seek); the loop goes on, and the next recovery seeks the partition itself."""
    handed, sought = run([stop_the_flow, flowing, flowing], revoked=True)
    assert sought == [{LOG3: 0}] and handed == []  # nothing more fetched: the position stayed
