"""Create ccmon's topics with the configured partition count, or say clearly why they don't fit."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.config import Settings
from streams.errors import CcmonError
from streams.kafka.auth import client_kwargs, start_client


def min_insync_replicas(replication_factor: int) -> int:
    """``min.insync.replicas`` for a replication factor: 2 from 3 replicas on (an acks=all write
    is on two brokers before it is acknowledged, and writes go on with one broker down); 1 below
    3, where 2 would stop every write as soon as one of two brokers is down."""
    return 2 if replication_factor >= 3 else 1


def topic_configs(s: Settings) -> dict[str, str]:
    """The configuration of every topic ccmon creates, the worker's changelogs included
    (streams/worker/faust_app.py): one rule, so that no topic is less durable than another."""
    return {"min.insync.replicas": str(min_insync_replicas(s.topics.replication_factor))}


def topic_names(s: Settings) -> list[str]:
    """Topics that must be co-partitioned: the inputs, dead letters and the internal facts topic."""
    return [s.calls_topic, s.chats_topic, s.agents_topic, s.topics.dead_letter, s.topics.facts]


async def _described_with_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> list:
    """Describe the topics once every partition has a leader (new topics need a moment), so that
    the first produce does not hit NotLeaderForPartition and log retries."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        ready = all(
            topic.get("error_code", 0) == 0
            and topic.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in topic["partitions"])
            for topic in described
        )
        if ready or asyncio.get_running_loop().time() > deadline:
            return described
        await asyncio.sleep(0.1)


async def ensure_topics(s: Settings, timeout_s: float = 30.0) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=s.kafka.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        **client_kwargs(s),
    )
    await start_client(s, admin.start, admin.close, timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topic_names(s) if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(t, s.partitions, s.topics.replication_factor, topic_configs=topic_configs(s))
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass
        described = await _described_with_leaders(admin, topic_names(s), timeout_s)
        for topic in described:
            name, count = topic["topic"], len(topic.get("partitions") or [])
            if topic.get("error_code", 0) == 0 and count != s.partitions:
                raise CcmonError(
                    f"topic {name} has {count} partitions but CCMON_PARTITIONS={s.partitions}; "
                    f"all ccmon topics must have the same count (set CCMON_PARTITIONS={count})"
                )
    except KafkaError as exc:
        raise CcmonError(f"Kafka refused to create ccmon topics: {exc}") from None
    finally:
        await admin.close()
