"""A worker whose data directory holds another cluster's snapshots (the cluster rebuilt, Kafka's
volume dropped but not the worker's) comes up on the new cluster, says once that it set them
aside, and counts exactly the new cluster's events: its changelogs are the truth, not the files.
On the real broker of the session and a second, fresh one (its own cluster id and topics)."""

from __future__ import annotations

import signal
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from streams.dev.harness import free_kafka_port, wait_until
from streams.dev.kafka_local import LocalKafka
from streams.faust_ext.snapshot import header_of
from tests.integration.support import Env, Worker, record_flat, reference_worker, state_series, total_events

pytestmark = pytest.mark.integration

TABLES = 3  # lifecycle, queues, agents: one snapshot each


def replay(env: Env, lines: list[bytes], path: Path) -> None:
    path.write_bytes(b"".join(lines))
    done = env.ccmon("replay", str(path), "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr


def test_snapshots_of_another_cluster_are_set_aside_and_the_state_is_the_new_clusters(
    env: Env, workers: list[Worker], tmp_path: Path
):
    fresh = LocalKafka(port=free_kafka_port(), data_dir=tmp_path / "kafka-new")
    with ThreadPoolExecutor(1) as pool:
        booting = pool.submit(fresh.start)  # while the first worker runs: its JVM takes seconds
        try:
            on_the_old_then_the_new_cluster(env, workers, tmp_path, fresh, booting)
        finally:
            wait([booting])
            fresh.stop()


def on_the_old_then_the_new_cluster(
    env: Env, workers: list[Worker], tmp_path: Path, fresh: LocalKafka, booting: Future[str]
) -> None:
    snaps = env.tmp / "worker" / "snapshots" / env.prefix
    old = record_flat(env, tmp_path / "old.jsonl", 31, 900, 2, "--staff", "4")
    first = Worker(env, CCMON_SNAPSHOT_INTERVAL_S="1")
    workers.append(first)
    replay(env, old, tmp_path / "old-replay.jsonl")
    first.wait_settled(lambda m: total_events(m) == len(old), what="the old cluster's events")

    def snapshots_with_records() -> bool:
        headers = [header_of(f) for f in snaps.glob("*.snap")]
        return len(headers) == TABLES and all(
            h is not None and any(o is not None for o in h["offsets"].values()) for h in headers
        )

    wait_until(
        snapshots_with_records,
        timeout=60,
        what="snapshots of the old cluster's state",
        check=first.check,
    )
    first.stop(signal.SIGKILL)
    headers = [header_of(f) for f in sorted(snaps.glob("*.snap"))]
    # each records the cluster and its changelog topic, by the ids Kafka gave them
    assert all(h is not None and h["cluster_id"] for h in headers), headers
    assert len({h["topic_id"] for h in headers if h is not None} - {None}) == TABLES, headers

    booting.result()
    on_new: list[Worker] = []
    try:
        new_env = Env(fresh, env.tmp, env.prefix)  # the same data directory, app id and topic names
        new = record_flat(new_env, tmp_path / "new.jsonl", 32, 120, 1, "--staff", "2")
        second = Worker.launched(new_env, CCMON_SNAPSHOT_INTERVAL_S="1", CCMON_LOG_LEVEL="info")
        on_new.append(second)
        reference = reference_worker(new_env, CCMON_SNAPSHOT_INTERVAL_S="0")
        on_new.append(reference)
        second.wait_ready()  # on main it exits here: ConsistencyError, persisted offset > -1
        replay(new_env, new, tmp_path / "new-replay.jsonl")
        truth = reference.wait_settled(lambda m: total_events(m) == len(new), what="the new cluster's truth")
        m = second.wait_settled(lambda m: total_events(m) == len(new), what="the new events only")
        assert state_series(m) == state_series(truth)
        assert len(state_series(truth)) > 20

        log = second.log.read_text()
        warned = [line for line in log.splitlines() if "set aside" in line]
        assert len(warned) == 1 and "of Kafka cluster" in warned[0], log[-3000:]
        assert "from snapshot" not in log  # nothing of the old cluster was loaded
        aside = list((snaps / "set-aside").glob("*/*.snap"))
        assert len(aside) == TABLES, aside  # moved, not deleted
    finally:
        for w in on_new:
            w.stop(signal.SIGKILL)
