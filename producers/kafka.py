"""A Kafka producer configured for ccmon's producers: idempotent, ordered, batched."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.config import Settings
from streams.errors import CcmonError


async def start_producer(s: Settings, timeout_s: float = 30.0) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5,
        max_batch_size=256 * 1024, request_timeout_ms=30000,
    )
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
    except (KafkaConnectionError, asyncio.TimeoutError, OSError):
        await producer.stop()
        raise CcmonError(f"cannot reach Kafka at {s.bootstrap_servers}: is it running? "
                         f"(start a local one with: ccmon kafka start)") from None
    return producer
