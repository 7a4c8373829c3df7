"""A worker whose data directory holds snapshots of another cluster (the cluster rebuilt, Kafka's
volume dropped but not the worker's) or of topics since deleted and created again comes up, says
once that it set them aside, and counts exactly the events of the changelogs it meets: those are
the truth, not the files. On the session's real broker and a second, fresh one (its own cluster
id); the topics recreated on the session's broker keep its cluster id, so only the topic ids
tell them apart (as on a docker-compose volume dropped: the image formats every new volume with
one default CLUSTER_ID)."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.dev.harness import free_kafka_port, wait_until
from streams.dev.kafka_local import LocalKafka
from streams.faust_ext.snapshot import header_of
from tests.integration.support import (
    PARTITIONS,
    Env,
    Worker,
    record_flat,
    reference_worker,
    replay_lines,
    state_series,
    total_events,
)

pytestmark = pytest.mark.integration

TABLES = 3  # lifecycle, queues, agents: one snapshot each


def snapshots_of_a_first_worker(env: Env, workers: list[Worker], tmp_path: Path) -> Path:
    """A worker fed some traffic until it has snapshotted all three tables, then killed; the
    snapshots' folder."""
    snaps = env.tmp / "worker" / "snapshots" / env.prefix
    old = record_flat(env, tmp_path / "old.jsonl", 31, 900, 2, "--staff", "4")
    first = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="1")
    workers.append(first)
    replay_lines(env, old, tmp_path / "old-replay.jsonl")
    first.wait_settled(lambda m: total_events(m) == len(old), what="the first events")

    def snapshots_with_records() -> bool:
        # not every table's: a worker's first assignment may miss a changelog Faust created a
        # moment before ("Ignoring missing topic"), and its snapshot then covers no partition
        headers = [header_of(f) for f in snaps.glob("*.snap")]
        return len(headers) == TABLES and any(
            h is not None and any(o is not None for o in h["offsets"].values()) for h in headers
        )

    wait_until(snapshots_with_records, timeout=60, what="snapshots with records", check=first.check)
    first.stop(signal.SIGKILL)
    headers = [header_of(f) for f in sorted(snaps.glob("*.snap"))]
    # each records the cluster and its changelog topic, by the ids Kafka gave them
    assert all(h is not None and h["cluster_id"] for h in headers), headers
    assert len({h["topic_id"] for h in headers if h is not None} - {None}) == TABLES, headers
    return snaps


def comes_up_with_the_new_truth(
    env: Env, workers: list[Worker], tmp_path: Path, snaps: Path, why: str
) -> None:
    """A worker on ``env`` with the snapshots in ``snaps`` comes up, sets them aside with one
    line saying ``why``, and shows exactly what a reference worker shows for the new events."""
    new = record_flat(env, tmp_path / "new.jsonl", 32, 120, 1, "--staff", "2")
    second = Worker.launched(env, CCMON_SNAPSHOT_INTERVAL_S="1", CCMON_LOG_LEVEL="info")
    workers.append(second)
    reference = reference_worker(env, CCMON_SNAPSHOT_INTERVAL_S="0")
    workers.append(reference)
    second.wait_ready()  # on main it exits here: ConsistencyError, persisted offset > -1
    replay_lines(env, new, tmp_path / "new-replay.jsonl")
    truth = reference.wait_settled(lambda m: total_events(m) == len(new), what="the new events' truth")
    m = second.wait_settled(lambda m: total_events(m) == len(new), what="the new events only")
    assert state_series(m) == state_series(truth)
    assert len(state_series(truth)) > 20

    log = second.log.read_text()
    warned = [line for line in log.splitlines() if "set aside" in line]
    assert len(warned) == 1 and why in warned[0], log[-3000:]
    assert "from snapshot" not in log  # nothing of the old state was loaded
    aside = list((snaps / "set-aside").glob("*/*.snap"))
    assert len(aside) == TABLES, aside  # moved, not deleted


def test_snapshots_of_another_cluster_are_set_aside_and_the_state_is_the_new_clusters(
    env: Env, workers: list[Worker], tmp_path: Path
):
    fresh = LocalKafka(port=free_kafka_port(), data_dir=tmp_path / "kafka-new")
    with ThreadPoolExecutor(1) as pool:
        booting: Future[str] = pool.submit(fresh.start)  # while the first worker runs: a JVM takes seconds
        try:
            snaps = snapshots_of_a_first_worker(env, workers, tmp_path)
            booting.result()
            on_new: list[Worker] = []
            try:  # the same data directory, app id and topic names
                comes_up_with_the_new_truth(
                    Env(fresh, env.tmp, env.prefix), on_new, tmp_path, snaps, "of Kafka cluster"
                )
            finally:
                for w in on_new:
                    w.stop(signal.SIGKILL)
        finally:
            wait([booting])
            fresh.stop()


async def recreate_topics(address: str, prefix: str) -> None:
    """Delete every topic of this deployment (inputs, facts, changelogs, Faust's own), wait until
    the broker no longer lists them, and create the changelogs again, empty (as another worker of
    the group would on its start): same names, new topic ids."""
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        changelogs = [t for t in mine if t.endswith("-changelog")]
        assert len(changelogs) == TABLES, mine
        await admin.delete_topics(mine)
        while set(mine) & set(await admin.list_topics()):
            await asyncio.sleep(0.2)  # deletion is asynchronous; the loop ends on the broker's state
        compact = {"cleanup.policy": "compact"}
        await admin.create_topics([NewTopic(t, PARTITIONS, 1, topic_configs=compact) for t in changelogs])
    finally:
        await admin.close()


def test_snapshots_of_topics_since_recreated_are_set_aside(env: Env, workers: list[Worker], tmp_path: Path):
    snaps = snapshots_of_a_first_worker(env, workers, tmp_path)
    asyncio.run(recreate_topics(env.kafka.address, env.prefix))
    comes_up_with_the_new_truth(env, workers, tmp_path, snaps, "of an earlier topic")
