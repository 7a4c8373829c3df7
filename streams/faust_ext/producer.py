"""The worker's Kafka producer (facts, dead letters, changelog writes): acks=all and idempotent.

Faust's producer asks for acks=all (``producer_acks`` -1) but turns idempotence on only inside
transactions, which ccmon does not use (at-least-once, docs/architecture.md). Without it, a
produce request whose answer is lost (a leader change, a timeout during NOT_ENOUGH_REPLICAS) is
sent again and may be written twice. With it the broker drops the resent batch by its producer id
and sequence number, so a leader change or a broker restart neither loses nor doubles a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import Producer

__all__ = ["DurableProducer", "install"]


class DurableProducer(Producer):
    """Faust's aiokafka producer with acks=all and idempotence always on."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


def install(app: Any) -> None:
    """Make ``app`` create its producer from :class:`DurableProducer` (before the app starts)."""
    app.transport.Producer = DurableProducer
