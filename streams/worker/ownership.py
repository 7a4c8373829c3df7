"""Which partitions, and so which queues and agents, this worker owns now, and what its pages say
about its share. With several workers each queue and agent is exported by exactly one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streams.config import Settings
from streams.core.layout import partition_for_queue
from streams.faust_ext.internals import assignment
from streams.owned import owner_filter

__all__ = ["Ownership"]


class Ownership:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.ready = False  #: the first assignment's state is recovered

    def assigned(self, topics: Iterable[str]) -> set[int]:
        """Partitions of these topics in the assignment Faust recorded last (``internals.assignment``)."""
        topics = set(topics)
        return {tp.partition for tp in assignment(self.app) if tp.topic in topics}

    def settled(self) -> bool:
        return self.ready and not self.app.rebalancing

    def owned_partitions(self) -> frozenset[int]:
        """The facts partitions whose queues (and agents) this worker exports now: those assigned
        to it, and none while a rebalance runs (from revocation until the new assignment's state
        is recovered, what this worker holds may be another worker's or incomplete)."""
        if not self.settled():
            return frozenset()
        return frozenset(self.assigned((self.settings.topics.facts,)))

    def agent_filter(self) -> Callable[[str], bool]:
        """Predicate: is this agent's record on a partition this worker owns? Exported agents pass
        it, so with several workers each agent appears on exactly one."""
        owned, n = self.owned_partitions(), self.settings.partitions
        return lambda agent_id: partition_for_queue(agent_id, n) in owned

    def queue_filter(self) -> Callable[[str], bool]:
        return owner_filter(self.owned_partitions(), self.settings.partitions)

    def scope(self, what: str) -> str:
        """What this worker's pages show (``what``: "queue" or "agent"): with several workers,
        each shows its own share."""
        owned, n = sorted(self.owned_partitions()), self.settings.partitions
        if len(owned) == n:
            return f"all {what}s (this worker owns every partition)"
        if not owned and not self.settled():
            return (
                "this worker's share: none while partitions are being reassigned; other workers show theirs"
            )
        return f"this worker's share: {what} partitions {owned} of {n}; other workers show the rest"

    def current(self, messages: list[Any]) -> list[Any]:
        """The messages of the current consumer generation, none while the flow is suspended (a
        rebalance). A batch fetched before a rebalance may hold messages of partitions now
        another worker's; those still ours are fetched again from the committed offset, so
        neither is processed here."""
        if not self.app.flow_control.is_active():
            return []
        generation = self.app.consumer_generation_id
        return [m for m in messages if m.generation_id == generation]
