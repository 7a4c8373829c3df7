"""Both stages in one process, wired as the Faust agents wire them, with no Kafka.

For unit tests with hand-computed expectations and for benchmarking the pure core alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.config import Settings
from streams.core.agentview import AgentStore
from streams.core.customers import CustomerStage
from streams.core.intake import BatchOutput, Intake, Record
from streams.core.layout import encode_facts
from streams.core.queues import QueueStore
from streams.core.stage2 import apply_message

FACTS = "ccmon-facts"  #: the facts topic's name in dead letters (the default CCMON_FACTS_TOPIC)


class LocalPipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lifecycle: dict[str, Any] = {}
        self.queues: dict[str, Any] = {}
        self.agents: dict[str, Any] = {}
        self.intake = Intake(self.lifecycle, settings.kpi)
        self.store = QueueStore(self.queues, settings.kpi)
        self.agent_store = AgentStore(self.agents, settings.kpi)
        #: the customer stage's records (in the worker they live in the queue table)
        self.customers: dict[str, Any] = {}
        self.customer_stage = CustomerStage(self.customers, settings.kpi, FACTS)
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
        self._declare_empty(now)
        return out

    def sweep(self, now: float) -> BatchOutput:
        out = self.intake.sweep()
        self._apply(out, now)
        self._declare_empty(now)
        self.agent_store.expire(now)
        return out

    def apply_facts(self, partition: int, message: bytes | None, now: float) -> None:
        """Stage 2 of one facts message, as the worker does it: a fact that cannot be applied is
        dead-lettered (``apply_error``) and the others are applied."""
        offset = self._offsets.get((FACTS, partition), -1) + 1
        self._offsets[(FACTS, partition)] = offset
        stage = self.customer_stage
        stage.begin(partition, offset)
        for error in apply_message(
            message, self.store.apply, self.agent_store.apply, now, set(), set(), stage.apply
        ):
            self.dead.append(error.dead_letter(FACTS, partition, offset, message))
        derived: dict[int, list[Any]] = {}
        for part, row in stage.take():  # the customer stage's facts for the queues, sent as one batch
            derived.setdefault(part, []).append(row)
        for part, rows in derived.items():
            self.apply_facts(part, encode_facts(rows), now)

    def _declare_empty(self, now: float) -> None:
        """Every record fed so far is all there is: a contact partition without an event is empty
        (the worker tells it from the partition's end offset)."""
        k = self.settings.kpi
        self._apply(
            self.intake.declare_empty((t, p) for t in k.contact_topics for p in range(k.partitions)), now
        )

    def _apply(self, out: BatchOutput, now: float) -> None:
        # round-trip through the wire format, as the facts topic does
        for partition, rows in out.facts.items():
            self.apply_facts(partition, encode_facts(rows), now)
        self.dead.extend(out.dead)
        for key, n in out.results.items():
            self.results[key] = self.results.get(key, 0) + n
