"""The one Kafka producer factory (simulator, replay, ingest, benchmark): idempotent, ordered,
batched, and connected with the deployment's TLS/SASL settings (streams/kafka/auth.py)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streams.config import Settings
from streams.kafka.auth import client_kwargs, start_client

__all__ = ["start_producer"]


async def start_producer(
    s: Settings, timeout_s: float = 30.0, linger_ms: int = 5, max_batch_size: int = 256 * 1024
) -> AIOKafkaProducer:
    """Started (or a one-line CcmonError); ``linger_ms`` and ``max_batch_size`` trade latency for
    throughput."""
    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        request_timeout_ms=int(s.kafka.producer_timeout_s * 1000),
        **client_kwargs(s),
    )
    await start_client(s, producer.start, producer.stop, timeout_s)
    return producer
