"""Running the receiver as a command: topics, producer, server, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import time

from producers.sources.base import stop_event
from producers.sources.webhooks.platform import Platform
from producers.sources.webhooks.receiver import RESULTS, Receiver, ReceiverConfig
from streams.config import Settings
from streams.errors import CcmonError


async def serve(s: Settings, config: ReceiverConfig, platforms: dict[str, Platform]) -> Receiver:
    receiver = Receiver(s, config, platforms)
    receiver.load()
    stop = stop_event()
    await receiver.start()
    try:
        try:
            await receiver.serve()
        except OSError as exc:
            raise CcmonError(f"cannot listen on {config.host}:{config.port} ({exc.strerror})") from None
        routes = ", ".join(f"/webhooks/{n}" for n in platforms)
        receiver.note(f"listening on http://{config.host}:{receiver.bound_port} ({routes}; /metrics)")
        await stop.wait()
    finally:
        await receiver.close()
        await receiver.stop()
    return receiver


def main(config: ReceiverConfig, platforms: dict[str, Platform], s: Settings) -> int:
    from streams.kafka.topics import ensure_topics

    asyncio.run(ensure_topics(s))
    started = time.monotonic()
    receiver = asyncio.run(serve(s, config, platforms))
    rows = []
    for name in platforms:
        counts = {
            r: int(
                receiver.registry.get_sample_value(
                    "ccmon_webhook_deliveries_total", {"platform": name, "result": r}
                )
                or 0
            )
            for r in RESULTS
        }
        rows.append(f"  {name}: " + ", ".join(f"{r} {n}" for r, n in counts.items()))
    print(
        f"ccmon ingest webhooks: stopped after {time.monotonic() - started:.1f} s; "
        f"{sum(receiver.produced.values())} events acknowledged\n" + "\n".join(rows),
        flush=True,
    )
    return 0
