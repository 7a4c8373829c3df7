"""Table changelog writes sent straight to the app's Kafka producer.

Faust's ``Table.send_changelog`` queues each write in a buffer of 100 messages that is drained
one message at a time, and its consumer stops handing messages to the streams while that buffer
is over 100 ("producer ebb"). A batch of a few thousand events dirties a few thousand records,
so the worker spent most of its time waiting there. These writes go to the aiokafka producer
directly, which batches them; values arrive already encoded, and keys are encoded as the table
encodes them, so Faust's recovery reads them back unchanged. The worker awaits the delivery of
every write before an offset commit (``Pipeline.state_written``): Faust's flush before a commit
covers these writes as it covered ``send_changelog``'s, but it ends on a failed write too.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson


class Changelog:
    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self._table = table
        #: partition → offset of the last write the broker acknowledged (what a snapshot covers)
        self.acked: dict[int, int] = {}

    @property
    def topic(self) -> str:
        return self._table.changelog_topic.get_topic_name()

    async def write(self, partition: int, key: str, value: bytes | None) -> Awaitable[Any]:
        """Queue one record (``None`` deletes it); the result resolves when the broker has it."""
        sent = await self._app.producer.send(self.topic, orjson.dumps(key), value, partition, None, None)
        sent.add_done_callback(self._acked)
        return sent

    def _acked(self, sent: Any) -> None:
        if not sent.cancelled() and sent.exception() is None:
            meta = sent.result()
            if meta.offset > self.acked.get(meta.partition, -1):
                self.acked[meta.partition] = meta.offset
