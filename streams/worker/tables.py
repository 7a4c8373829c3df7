"""The worker's topics and its three state tables, with their changelog writers.

cc.calls, cc.chats, cc.agents ──► lifecycle agent (keyed by contact / agent)
                                    │ table ccmon-lifecycle, dead letters ──► cc.dead-letter
                                    ▼ facts, partitioned by queue (agent facts: by agent id)
                                  ccmon-facts ──► queues agent (keyed by queue)
                                                    │ tables ccmon-queues, ccmon-agents
                                                    ▼
                                                 /metrics (collector reads the tables)
"""

from __future__ import annotations

from typing import Any

import faust

from streams.config import Settings
from streams.core.intake import record_partition
from streams.core.layout import agent_record_partition, queue_record_partition
from streams.faust_ext import codec
from streams.faust_ext.changelog import Changelog
from streams.faust_ext.snapshot import STORE_URL
from streams.kafka.topics import topic_configs
from streams.worker.snapshots import snapshot_dir

__all__ = ["Tables"]


class Tables:
    def __init__(self, app: Any, s: Settings) -> None:
        codec.register()
        self.app, self.settings = app, s
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(s.calls_topic, s.chats_topic, s.agents_topic, partitions=s.partitions, **raw)
        self.facts = app.topic(s.topics.facts, partitions=s.partitions, internal=True, **raw)
        self.dead_letters = app.topic(s.topics.dead_letter, partitions=s.partitions, **raw)
        # Batch hand-off (issue 15, streams/faust_ext/consumer.py): the consumer hands each fetch's
        # messages of the inputs and the facts to the agents as whole batches through in-memory
        # channels (a few batches deep: back-pressure), bypassing Faust's per-message Event path;
        # the topics are still Faust's to subscribe (and the facts topic to declare).
        self.input_batches = app.channel(maxsize=4)
        self.fact_batches = app.channel(maxsize=4)
        for topic in (self.inputs, self.facts):
            app.topics.add(topic)
        self.lifecycle = self._table("ccmon-lifecycle")
        self.queues = self._table("ccmon-queues")
        self.agents = self._table(
            "ccmon-agents"
        )  #: per-agent records, on the facts partition of the agent id
        self.lifecycle_log = Changelog(app, self.lifecycle)
        self.queue_log = Changelog(app, self.queues)
        self.agent_log = Changelog(app, self.agents)

    def batch_channels(self) -> dict[str, Any]:
        """Topic name → the channel its messages are handed to in batches (``install_consumer``)."""
        return {
            **{name: self.input_batches for name in self.inputs.topics},
            **{name: self.fact_batches for name in self.facts.topics},
        }

    def _table(self, name: str) -> Any:
        """A changelog-backed table whose keys and values are encoded by orjson, held in memory and
        started from a local snapshot when there is a usable one (streams/faust_ext/snapshot.py)."""
        s = self.settings
        table = self.app.Table(
            name,
            partitions=s.partitions,
            store=STORE_URL,
            schema=faust.Schema(key_serializer=codec.NAME, value_serializer=codec.NAME),
            extra_topic_configs=topic_configs(s),  # min.insync.replicas, as the other topics
        )
        table.key_serializer = table.value_serializer = codec.NAME
        if s.batching.snapshot_interval_s > 0:
            table.data.path = snapshot_dir(s) / f"{name}.snap"
        return table

    def with_changelogs(self) -> list[tuple[Any, Changelog]]:
        return [
            (self.lifecycle, self.lifecycle_log),
            (self.queues, self.queue_log),
            (self.agents, self.agent_log),
        ]

    def sizes(self) -> dict[str, int]:
        return {
            "lifecycle": len(self.lifecycle.data),
            "queues": len(self.queues.data),
            "agents": len(self.agents.data),
        }

    def drop_unowned(self, inputs: set[int], facts: set[int]) -> int:
        """Forget the records of partitions not in these: lifecycle records by their input
        partition, queue and agent records by their facts partition. Returns how many went."""
        n = self.settings.partitions
        lifecycle, queues, agents = self.lifecycle.data, self.queues.data, self.agents.data
        stale = [k for k, v in lifecycle.items() if record_partition(k, v) not in inputs]
        stale_queues = [k for k in queues.keys() if queue_record_partition(k, n) not in facts]
        stale_agents = [k for k in agents.keys() if agent_record_partition(k, n) not in facts]
        for data, keys in ((lifecycle, stale), (queues, stale_queues), (agents, stale_agents)):
            for key in keys:
                del data[key]
        return len(stale) + len(stale_queues) + len(stale_agents)
