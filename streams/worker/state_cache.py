"""The pure core's state objects over the tables' stores, rebuilt after every rebalance: a
recovery replaces the stores' records, and each object's derived indexes (ACW deadlines, the
queue registry, bucket lists) must be rebuilt from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from streams.config import KpiSettings, Settings
from streams.core.agentview import AgentStore
from streams.core.customers import CustomerStage
from streams.core.intake import Intake
from streams.core.queues import QueueStore

__all__ = ["StateCache"]

T = TypeVar("T")


class _Cached:
    def __init__(self) -> None:
        self.value: Any = None
        self.generation = -1


class StateCache:
    """``intake()``, ``store()`` and ``agent_store()``, each rebuilt at most once per rebalance generation."""

    def __init__(self, settings: Settings, lifecycle: Any, queues: Any, agents: Any) -> None:
        self.settings = settings
        self._tables = {"intake": lifecycle, "store": queues, "agents": agents, "customers": queues}
        self._cached = {name: _Cached() for name in self._tables}
        self.generation = 0

    def new_generation(self) -> None:
        """The tables' partitions changed: every object is rebuilt on its next use."""
        self.generation += 1

    def _get(self, name: str, make: Callable[[Any, KpiSettings], T]) -> T:
        cached = self._cached[name]
        if cached.value is None or cached.generation != self.generation:
            cached.value = make(self._tables[name].data, self.settings.kpi)
            cached.generation = self.generation
        value: T = cached.value
        return value

    def intake(self) -> Intake:
        return self._get("intake", Intake)

    def store(self) -> QueueStore:
        return self._get("store", QueueStore)

    def agent_store(self) -> AgentStore:
        return self._get("agents", AgentStore)

    def customer_stage(self) -> CustomerStage | None:
        """The customer stage over the queue table (its ``u|`` and ``n|`` records); None without
        a customer key (no customer facts then)."""
        if self.settings.customer_key is None:
            return None
        topic = self.settings.topics.facts
        return self._get("customers", lambda data, kpi: CustomerStage(data, kpi, topic))
