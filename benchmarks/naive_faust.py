"""The comparison row: a naive faust-streaming agent, one table update per event.

    python -m benchmarks.naive_faust     (settings from the same CCMON_* variables as the worker)

This is how a first Faust version of ccmon would look: decode each event, count it per queue (or
per contact when the event names no queue) in a changelog-backed table, one write per event.
``/count`` reports how many events it has handled, for the benchmark to time it.
"""

from __future__ import annotations

import os
from typing import Any

import faust
import orjson

from streams.config import load


def main() -> None:
    s = load(os.environ)
    os.makedirs(os.path.join(s.data_dir, "naive"), exist_ok=True)
    app = faust.App(
        f"{s.app_id}-naive",
        broker=s.kafka.broker,
        store="memory://",
        topic_partitions=s.partitions,
        web_bind=s.web.host,
        web_port=s.web.port,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        datadir=os.path.join(s.data_dir, "naive"),
    )
    inputs = app.topic(
        s.calls_topic, s.chats_topic, s.agents_topic, key_serializer="raw", value_serializer="raw"
    )
    counts = app.Table("naive-counts", default=int, partitions=s.partitions)
    handled = [0]

    @app.agent(inputs)
    async def count(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            try:
                body = orjson.loads(event.value)
                key = body.get("queue") or body.get("contact_id") or body.get("agent_id") or "?"
            except (orjson.JSONDecodeError, AttributeError):
                key = "bad"
            counts[str(key)] += 1
            handled[0] += 1

    @app.page("/count")
    async def count_page(web: Any, request: Any) -> Any:
        return web.json({"handled": handled[0]})

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
