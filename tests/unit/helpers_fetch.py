"""A HandOffConsumer (streams/faust_ext/consumer.py) whose fetches are scripted, to drive its fetch
loop without a broker (tests/unit/test_consumer_rewind.py, tests/unit/test_batch_handoff.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.faust_ext.consumer import Batch, HandOffConsumer

__all__ = [
    "CALLS0",
    "CALLS1",
    "CHANGELOG",
    "FACTS0",
    "LOG0",
    "TP",
    "Channel",
    "consumer",
    "fake_app",
    "message",
    "run",
    "scripted",
]

CHANGELOG = "app-ccmon-lifecycle-changelog"


def fake_app(rebalancing: bool, rebalancing_count: int) -> SimpleNamespace:
    """The parts of a Faust app the fetch loop reads: one changelog topic, every topic acked.
    Each rebalance gets its assignment at once (``held``: None), unless a test holds it back by
    setting ``held`` to the rebalance whose assignment came last."""
    return SimpleNamespace(
        rebalancing=rebalancing,
        rebalancing_count=rebalancing_count,
        held=None,
        consumer_generation_id=1,
        tables=SimpleNamespace(changelog_topics={CHANGELOG}),
        topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        should_stop=False,
    )


def scripted(
    fetches: list, app: Any, message: Callable[[TP, int, Any], Any], **attributes: Any
) -> HandOffConsumer:
    """Each fetch is a callable run before it (to change the app's rebalance state) and what it
    returns: (tp, offset) pairs, or callables run between two of its messages; the loop ends
    after the last fetch. ``message(tp, offset, app)`` builds a fetched message."""
    c = HandOffConsumer.__new__(HandOffConsumer)
    stopped = asyncio.Event()
    script = iter(fetches)

    def assign() -> None:  # what HandOffConsumer.on_partitions_assigned records
        c._assigned_for = app.rebalancing_count if app.held is None else app.held

    async def getmany(timeout: float) -> Any:
        step = next(script, None)
        if step is None:
            stopped.set()
            return
        before, fetched = step
        before(app)
        assign()
        for item in fetched:
            if callable(item):
                item(app)
                assign()
                continue
            tp, offset = item
            yield tp, message(tp, offset, app)

    c.__dict__.update(
        app=app,
        getmany=getmany,
        _stopped=stopped,
        _crashed=asyncio.Event(),
        _read_offset=defaultdict(lambda: None),
        suspend_flow=asyncio.Event(),
        _commit_every=None,
        _n_acked=0,
        log=SimpleNamespace(warning=lambda *a: None, info=lambda *a: None, exception=lambda *a: None),
    )
    c.__dict__.update(attributes)
    return c


def run(c: HandOffConsumer) -> None:
    """The fetch loop until the script ends."""

    async def main() -> None:
        c.__dict__["_loop"] = asyncio.get_running_loop()  # mode's wait_first runs on the service's loop
        await c._drain_messages(SimpleNamespace(_stopped=asyncio.Event()))

    asyncio.run(main())


CALLS0, CALLS1, FACTS0, LOG0 = (
    TP(topic="calls", partition=0),
    TP(topic="calls", partition=1),
    TP(topic="facts", partition=0),
    TP(topic=CHANGELOG, partition=0),
)


class Channel:
    """Records what is put into it, as Faust's in-memory channel would queue it for its agent."""

    def __init__(self) -> None:
        self.kept: list[Batch] = []

    async def put(self, batch: Batch) -> None:
        self.kept.append(batch)

    @property
    def batches(self) -> list[list[tuple[str, int, int]]]:
        """What the agent gets: each batch with the messages that joined it before it was taken."""
        return [[(m.topic, m.partition, m.offset) for m in batch.messages] for batch in self.kept]


def message(tp: TP, offset: int, generation: int) -> Any:
    """A fetched message: the attributes of Faust's Message that the fetch loop and ack_batch read."""
    return SimpleNamespace(
        tp=tp, topic=tp.topic, partition=tp.partition, offset=offset, generation_id=generation, acked=False
    )


def consumer(
    fetches: Sequence[Any] = (), batch_size: int = 1000
) -> tuple[HandOffConsumer, Any, Channel, Channel, list]:
    """A consumer whose fetches are scripted (tests/unit/helpers_fetch.py). Calls and facts go to
    two batch channels, the changelog through Faust's per-message callback."""
    app = fake_app(rebalancing=False, rebalancing_count=0)
    inputs, facts = Channel(), Channel()
    per_message: list = []

    async def callback(m: Any) -> None:
        per_message.append((m.topic, m.offset))

    async def rewind() -> None:
        return None

    c = scripted(
        list(fetches),
        app,
        lambda tp, offset, app: message(tp, offset, app.consumer_generation_id),
        callback=callback,
        _rewind=rewind,
        batch_channels={"calls": inputs, "facts": facts},
        batch_size=batch_size,
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _committed_offset=defaultdict(lambda: None),
        _gap=defaultdict(lambda: None),
        _waiting_for_ack=None,
    )
    return c, app, inputs, facts, per_message


def still(app: Any) -> None:
    """A scripted fetch's step that changes nothing in the app (no rebalance begins)."""
    return None
