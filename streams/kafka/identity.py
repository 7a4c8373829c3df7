"""Which Kafka cluster, and which incarnation of each topic, a client is talking to.

A snapshot of the state (streams/faust_ext/snapshot.py) is only valid on the changelog it was
taken from; a cluster rebuilt, or a topic deleted and created again under the same name, starts
the changelog over. Kafka names both: every cluster has an id (Metadata v2+), every topic an id
that a new topic of the same name does not share (KIP-516, Metadata v10+). aiokafka 0.14 speaks
Metadata up to v5, which has the cluster id but not the topic ids, so v12 is defined here in
aiokafka's own protocol classes (the layout of Kafka's MetadataRequest/MetadataResponse v12:
flexible, compact strings and arrays, tagged fields); a broker without it (Kafka < 2.8) is asked
v5 and the topic ids are unknown (None). End offsets are asked with aiokafka's ListOffsets.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.metadata import MetadataRequest_v5
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

__all__ = ["ClusterView", "TopicView", "cluster_view"]

LATEST = -1  #: ListOffsets' timestamp for the log end offset
NO_ERROR, UNKNOWN_TOPIC = 0, 3
ZERO_UUID = uuid.UUID(int=0)


class Uuid(AbstractType[uuid.UUID]):
    """Kafka's UUID: 16 bytes, most significant first."""

    @classmethod
    def encode(cls, value: uuid.UUID) -> bytes:
        return value.bytes

    @classmethod
    def decode(cls, data: BytesIO) -> uuid.UUID:
        raw = data.read(16)
        if len(raw) != 16:
            raise ValueError("Buffer underrun decoding UUID")
        return uuid.UUID(bytes=raw)


class MetadataResponse_v12(Response):
    API_KEY = 3
    API_VERSION = 12
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            CompactArray(
                ("node_id", Int32),
                ("host", CompactString("utf-8")),
                ("port", Int32),
                ("rack", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("cluster_id", CompactString("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            CompactArray(
                ("error_code", Int16),
                ("topic", CompactString("utf-8")),
                ("topic_id", Uuid),
                ("is_internal", Boolean),
                (
                    "partitions",
                    CompactArray(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", CompactArray(Int32)),
                        ("isr", CompactArray(Int32)),
                        ("offline_replicas", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("topic_authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class MetadataRequest_v12(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 3
    API_VERSION = 12
    RESPONSE_TYPE = MetadataResponse_v12
    SCHEMA = Schema(
        (
            "topics",
            CompactArray(("topic_id", Uuid), ("name", CompactString("utf-8")), ("tags", TaggedFields)),
        ),
        ("allow_auto_topic_creation", Boolean),
        ("include_topic_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class TopicMetadataRequest(Request[MetadataRequest_v5 | MetadataRequest_v12]):
    """Metadata of the named topics, never creating one: v12 where the broker has it, else v5."""

    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(
        self, request_struct_class: type[MetadataRequest_v5 | MetadataRequest_v12]
    ) -> MetadataRequest_v5 | MetadataRequest_v12:
        if request_struct_class is MetadataRequest_v12:
            return MetadataRequest_v12([(ZERO_UUID, name, {}) for name in self._topics], False, False, {})
        return MetadataRequest_v5(self._topics, False)


def kafka_uuid(value: uuid.UUID) -> str:
    """A UUID as Kafka writes it (``Uuid.toString``: URL-safe base64, unpadded), as
    ``kafka-topics.sh --describe`` shows a topic id and the cluster id is written."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


@dataclass(frozen=True)
class TopicView:
    topic_id: str | None  #: None: the broker does not give topic ids
    ends: dict[int, int]  #: partition → log end offset (the offset the next message gets); {} if not asked


@dataclass(frozen=True)
class ClusterView:
    cluster_id: str | None
    topics: dict[str, TopicView]  #: the named topics that exist


def parse_metadata(obj: dict[str, Any]) -> tuple[str | None, dict[str, tuple[str | None, dict[int, int]]]]:
    """(cluster id, topic → (topic id, partition → leader)) of a metadata response's ``to_object``;
    topics that do not exist are left out."""
    topics = {}
    for t in obj["topics"]:
        if t["error_code"] == UNKNOWN_TOPIC:
            continue
        if t["error_code"] != NO_ERROR:
            raise ValueError(f"metadata of topic {t['topic']}: error code {t['error_code']}")
        topic_id = t.get("topic_id")
        tid = None if topic_id is None or topic_id == ZERO_UUID else kafka_uuid(topic_id)
        topics[t["topic"]] = (tid, {p["partition"]: p["leader"] for p in t["partitions"]})
    return obj.get("cluster_id"), topics


async def cluster_view(client: Any, topics: list[str], ends: bool = True) -> ClusterView:
    """The cluster id, and the id and (with ``ends``) end offsets of each of ``topics`` that
    exists, through a bootstrapped ``aiokafka.AIOKafkaClient``. Raises on a broker error."""
    meta = await client.send(client.get_random_node(), TopicMetadataRequest(topics))
    cluster_id, found = parse_metadata(meta.to_object())
    by_leader: dict[int, list[tuple[str, int]]] = {}
    for name, (_, leaders) in found.items() if ends else ():
        for partition, leader in leaders.items():
            if leader < 0:
                raise ValueError(f"partition {name}[{partition}] has no leader")
            by_leader.setdefault(leader, []).append((name, partition))
    end_offsets: dict[str, dict[int, int]] = {name: {} for name in found}
    for leader, tps in by_leader.items():
        wanted: dict[str, list[tuple[int, int]]] = {}
        for name, partition in tps:
            wanted.setdefault(name, []).append((partition, LATEST))
        resp = await client.send(leader, OffsetRequest(-1, 0, list(wanted.items())))
        for t in resp.to_object()["topics"]:
            for p in t["partitions"]:
                if p["error_code"] != NO_ERROR:
                    raise ValueError(
                        f"end offset of {t['topic']}[{p['partition']}]: error code {p['error_code']}"
                    )
                end_offsets[t["topic"]][p["partition"]] = p[
                    "offset"
                ]  # ListOffsets v1+ (any broker since 0.10.1)
    return ClusterView(
        cluster_id, {name: TopicView(tid, end_offsets[name]) for name, (tid, _) in found.items()}
    )
