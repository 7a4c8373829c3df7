"""The worker's aiokafka consumer fetches with a short wait (streams/faust_ext/consumer.py,
"Fetches that wait for little"): a partition left out of the request in flight waits at most
``FETCH_MAX_WAIT_MS`` for the next one, not Faust's 1.5 s."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from streams.faust_ext.consumer import FETCH_MAX_WAIT_MS, FetchThread, install


async def _nothing() -> None:
    return None


def test_the_workers_consumer_asks_the_broker_to_hold_an_empty_fetch_for_50_ms_not_faust_s_1500():
    async def build() -> tuple[object, int]:
        app = faust.App("ccmon-fetch-wait", broker="kafka://127.0.0.1:1", autodiscover=False)
        install(app, _nothing)
        consumer: Any = app.consumer
        thread = consumer._thread
        kafka = thread._create_worker_consumer(app.transport)
        try:
            return thread, kafka._fetch_max_wait_ms
        finally:
            await kafka.stop()

    thread, wait_ms = asyncio.run(build())
    assert isinstance(thread, FetchThread)
    assert wait_ms == FETCH_MAX_WAIT_MS == 50
