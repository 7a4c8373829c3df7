"""A restarted worker tells the group coordinator that its killed predecessor is gone.

After a SIGKILL (or an OOM kill, or a lost host) the dead worker stays a member of the consumer
group until its session times out (``CCMON_SESSION_TIMEOUT_S``, 10 s); the group cannot finish a
rebalance without it, so its replacement waits that long before it owns anything. Each worker
therefore notes its group member id in the data directory (one file per process id); a worker
starting on the same data directory sends, for every noted process that no longer runs, the
LeaveGroup request that process would have sent on a clean stop. The coordinator then rebalances
at once. A member that is not in the group any more (it left cleanly, or its session expired) is
answered with UNKNOWN_MEMBER_ID, which is fine. Whatever fails here only costs the wait it tries
to save: the worker starts regardless.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import orjson
from aiokafka.client import AIOKafkaClient, ConnectionGroup, CoordinationType
from aiokafka.protocol.group import LeaveGroupRequest

from streams.config import Settings
from streams.kafka.auth import client_kwargs
from streams.processes import alive  # a running process, zombies excluded

log = logging.getLogger("ccmon.worker")


def members_dir(s: Settings) -> Path:
    return Path(s.data_dir) / "worker" / "members" / s.app_id


def note(s: Settings, member_id: str) -> None:
    """Remember this process's member id (after each rebalance: it may change)."""
    if not member_id:
        return
    folder = members_dir(s)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{os.getpid()}.tmp"
    tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "member_id": member_id}))
    os.replace(tmp, folder / f"{os.getpid()}.json")


async def evict(s: Settings, timeout_s: float = 10.0) -> list[str]:
    """Send LeaveGroup for the members of processes noted here that no longer run; returns their ids."""
    folder = members_dir(s)
    gone: list[tuple[Path, str]] = []
    for path in folder.glob("*.json") if folder.is_dir() else ():
        try:
            noted = orjson.loads(path.read_bytes())
            pid, member_id = int(noted["pid"]), str(noted["member_id"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if pid != os.getpid() and not alive(pid):
            gone.append((path, member_id))
    if not gone:
        return []
    client = AIOKafkaClient(
        bootstrap_servers=s.kafka.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        **client_kwargs(s),
    )
    left: list[str] = []
    try:
        await client.bootstrap()
        node = await client.coordinator_lookup(CoordinationType.GROUP, s.app_id)
        for path, member_id in gone:
            resp: Any = await client.send(
                node, LeaveGroupRequest(s.app_id, member_id), group=ConnectionGroup.COORDINATION
            )
            if resp.error_code == 0:
                left.append(member_id)
            path.unlink(missing_ok=True)
    except Exception as exc:  # the session timeout still applies: nothing is lost but time
        log.warning(
            "could not tell the group that a previous worker is gone (%r); "
            "its partitions move when its session times out",
            exc,
        )
    finally:
        await client.close()
    if left:
        log.warning(
            "told the group that %d killed worker(s) of this data directory left: %s", len(left), left
        )
    return left
