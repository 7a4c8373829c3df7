"""``ccmon replay FILE``: produce a recording, in order, as fast as possible or at recorded pace."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from producers.recording import read
from streams.config import Settings
from streams.kafka.producer import start_producer

PROGRESS_EVERY_S = 2.0


async def replay(s: Settings, path: Path, speed: float | None = None, quiet: bool = False) -> int:
    """Send every message; with ``speed`` (1.0 = recorded pace) wait for each one's time.
    Returns the number of messages produced; all are acknowledged by the broker on return."""
    messages = list(read(path))
    producer = await start_producer(s)
    sent, started, last_report = 0, time.monotonic(), time.monotonic()
    pending: list[asyncio.Future] = []
    try:
        for msg in messages:
            if speed and msg.at is not None:
                delay = msg.at / speed - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(msg.topic, msg.value, key=msg.key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if not quiet and time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                print(
                    f"ccmon replay: {sent}/{len(messages)} messages ({sent / len(messages):.0%})",
                    file=sys.stderr,
                    flush=True,
                )
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    if not quiet:
        elapsed = time.monotonic() - started
        print(
            f"ccmon replay: {sent} messages from {path} in {elapsed:.1f} s "
            f"({sent / elapsed if elapsed else 0:.0f}/s)",
            file=sys.stderr,
            flush=True,
        )
    return sent
