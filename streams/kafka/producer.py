"""A Kafka producer configured for ccmon's producers: idempotent, ordered, batched."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.kafka.auth import client_kwargs, start_client


async def start_producer(s: Settings, timeout_s: float = 30.0) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=256 * 1024, request_timeout_ms=int(s.producer_timeout_s * 1000), **client_kwargs(s),
    )
    await start_client(s, producer.start, producer.stop, timeout_s)
    return producer
