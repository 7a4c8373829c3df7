"""The snapshots' tie to the Kafka cluster: what each records of the changelog it was taken from,
and the check before the worker starts that sets aside those of another cluster or topic
(streams/faust_ext/snapshot.py, docs/architecture.md "Fast recovery")."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from streams.config import Settings
from streams.errors import CcmonError
from streams.faust_ext.snapshot import Origin, header_of, vet
from streams.kafka.auth import kafka_client, start_client
from streams.kafka.identity import cluster_view

__all__ = ["check_snapshots", "origins", "snapshot_dir"]

log = logging.getLogger("ccmon.snapshot")


def snapshot_dir(s: Settings) -> Path:
    """Per deployment: workers of other apps may share the data directory."""
    return Path(s.data_dir) / "worker" / "snapshots" / s.app_id


async def origins(client: Any, topics: list[str]) -> dict[str, Origin]:
    """changelog topic → the cluster's and the topic's ids, for the snapshots about to be written
    (a topic not there yet has none, and its table gets no snapshot this time)."""
    view = await cluster_view(client, topics, ends=False)
    return {name: Origin(view.cluster_id, t.topic_id) for name, t in view.topics.items()}


async def check_snapshots(s: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Before the worker starts: set aside the snapshots that do not belong to the cluster and
    changelogs it meets, with one warning line; returns file name → why. A broker that cannot
    be asked stops the start (a snapshot that cannot be checked is not loaded unchecked)."""
    folder = snapshot_dir(s)
    headers = [h for h in map(header_of, sorted(folder.glob("*.snap"))) if h is not None]
    if not headers:
        return {}
    client = kafka_client(s, timeout_s)
    await start_client(s, client.bootstrap, client.close, timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        while True:  # a partition's leader may be moving (a broker just restarted): ask again
            try:
                view = await cluster_view(client, sorted({str(h.get("topic")) for h in headers}))
                break
            except (KafkaError, ValueError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise CcmonError(
                        f"cannot check the snapshots in {folder} against Kafka ({exc!r})"
                    ) from None
                await asyncio.sleep(0.5)
    finally:
        await client.close()
    aside = folder / "set-aside" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = vet(folder, view, aside)
    if moved:
        by_reason: dict[str, list[str]] = {}
        for name, why in moved.items():
            by_reason.setdefault(why, []).append(name)
        log.warning(
            "snapshots that do not belong to the changelogs on this Kafka cluster set aside to %s: %s; "
            "the state is rebuilt from the changelogs",
            aside,
            "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items()),
        )
    return moved
