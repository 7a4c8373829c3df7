"""Both stages in one process, wired as the Faust agents wire them, with no Kafka.

For unit tests with hand-computed expectations and for benchmarking the pure core alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.config import Settings
from streams.core.agentview import AgentStore
from streams.core.facts import AGENT_ROUTED, Fact
from streams.core.intake import BatchOutput, Intake, Record
from streams.core.layout import decode_facts, encode_facts
from streams.core.queues import QueueStore


class LocalPipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lifecycle: dict[str, Any] = {}
        self.queues: dict[str, Any] = {}
        self.agents: dict[str, Any] = {}
        self.intake = Intake(self.lifecycle, settings.kpi)
        self.store = QueueStore(self.queues, settings.kpi)
        self.agent_store = AgentStore(self.agents, settings.kpi)
        self.dead: list[Any] = []
        self.results: dict[tuple[str, str], int] = {}
        self._offsets: dict[tuple[str, int], int] = {}

    def record(self, topic: str, value: Any, key: str | None = None, partition: int = 0) -> Record:
        """A record as Kafka would deliver it: the next offset of its partition."""
        offset = self._offsets.get((topic, partition), -1) + 1
        self._offsets[(topic, partition)] = offset
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        return Record(topic, partition, offset, key.encode() if key else None, raw)

    def feed(self, records: Iterable[Record], now: float) -> BatchOutput:
        out = self.intake.process(records, now=now)
        self._apply(out, now)
        return out

    def sweep(self, now: float) -> BatchOutput:
        out = self.intake.sweep()
        self._apply(out, now)
        self.agent_store.expire(now)
        return out

    def _apply(self, out: BatchOutput, now: float) -> None:
        # round-trip through the wire format, as the facts topic does
        for rows in out.facts.values():
            for src, offset, idx, row in decode_facts(encode_facts(rows)):
                target = self.agent_store if row[0] in AGENT_ROUTED else self.store
                target.apply(Fact.from_wire(row), (src, offset, idx), now, set())
        self.dead.extend(out.dead)
        for key, n in out.results.items():
            self.results[key] = self.results.get(key, 0) + n
