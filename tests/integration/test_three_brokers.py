"""A three-broker Kafka (replication 3, min.insync.replicas 2) loses brokers under a live stream:
the broker that leads the most partitions (inputs, facts and changelogs) is SIGKILLed, started
again, then another one is stopped cleanly and started again (a rolling upgrade). The simulator's
recording (flat profile, fixed seed) is replayed at a steady pace and an Asterisk ingester follows
a queue_log written here; two workers in one group consume. Nothing is lost or doubled: the
reference worker, started at the end in a group of its own, counts every event produced exactly
once, and the two workers' state adds up to its state series for series. The test prints how long
the workers' event counters stood still after each failure while input was flowing."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.dev.harness import free_kafka_port, wait_until
from streams.dev.kafka_local import LocalCluster, LocalKafka
from tests.integration.support import (
    ROOT,
    Env,
    Worker,
    check,
    metric,
    record_flat,
    reference_worker,
    state_series,
    summary_events,
    total_events,
)

pytestmark = pytest.mark.integration

SEED = 26
#: the recording: 40 simulated minutes of flat traffic, replayed 60 times faster (~40 s of input)
BACKFILL_S, RATE, SPEED = 2400, 2.0, 60
#: calls the Asterisk ingester reads, in three chunks (one per phase)
ASTERISK_CALLS = 90


def kafka_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``ccmon kafka ...``, the command a developer types."""
    return subprocess.run(
        [sys.executable, "-m", "streams", "kafka", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def describe(cluster: LocalCluster, prefix: str) -> list[dict]:
    """Every partition of the deployment's topics (inputs, facts, changelogs): leader and ISR."""

    async def run() -> list[dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.address, request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            return [
                {"topic": t["topic"], **p}
                for t in await admin.describe_topics(names)
                for p in t["partitions"]
            ]
        finally:
            await admin.close()

    return asyncio.run(run())


def leader_counts(cluster: LocalCluster, prefix: str) -> Counter[int]:
    return Counter(p["leader"] for p in describe(cluster, prefix) if p["leader"] >= 0)


def fully_replicated(cluster: LocalCluster, prefix: str) -> bool:
    """Every partition has all three replicas in sync (a rolling upgrade waits for this)."""
    parts = describe(cluster, prefix)
    return bool(parts) and all(len(p["isr"]) == 3 for p in parts)


class Standstill:
    """Polls the workers' event counters; the longest time they stood still in a span. Also what
    each worker says of the cluster (ccmon_broker_up, /health) at every poll: with one broker of
    three down the cluster still answers, and a worker must not call it unreachable."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers, self.seen, self.stop = workers, [(time.monotonic(), -1.0)], threading.Event()
        self.broker: list[tuple[float, int, float | None, int, str]] = []  #: t, worker, up, status, body
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                scrapes = [w.scrape() for w in self.workers]
            except OSError:
                continue
            now = time.monotonic()
            for i, (w, m) in enumerate(zip(self.workers, scrapes, strict=True)):
                status, body = health(w)
                self.broker.append((now, i, metric(m, "ccmon_broker_up"), status, body))
            total = sum(total_events(m) for m in scrapes)
            if total != self.seen[-1][1]:
                self.seen.append((now, total))

    def broker_down(self, start: float, end: float) -> list[tuple[float, int, float | None, int, str]]:
        """The polls between ``start`` and ``end`` where a worker said the cluster was down."""
        return [
            (round(t - start, 1), i, up, status, body)
            for t, i, up, status, body in self.broker
            if start <= t <= end and (up != 1.0 or status != 200)
        ]

    def longest(self, start: float, end: float) -> float:
        """Longest span without a change of the counters between ``start`` and ``end``."""
        times = [t for t, _ in self.seen if start <= t <= end]
        edges = [start, *times, end]
        return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def health(w: Worker) -> tuple[int, str]:
    """/health's status and body now (503 is an answer here, not an error)."""
    try:
        return 200, w.get("/health", timeout=5).decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, repr(e)


def queue_log_calls(path: Path, base: int, calls: range) -> None:
    """Calls in Asterisk's queue_log format (``epoch|callid|queue|agent|VERB|data``), each offered,
    answered by one of two agents, and completed; one in five abandoned instead."""
    rng = random.Random(SEED + calls.start)
    with open(path, "a") as f:
        if calls.start == 0:
            for agent in ("PJSIP/700", "PJSIP/701"):
                f.write(f"{base}|NONE|ast|{agent}|ADDMEMBER|\n")
        for i in calls:
            t = base + 5 * i + 1
            wait = rng.randint(1, 40)
            f.write(f"{t}|c{i}|ast|NONE|ENTERQUEUE||555{i}|1\n")
            if i % 5 == 4:
                f.write(f"{t + wait}|c{i}|ast|NONE|ABANDON|1|1|{wait}\n")
            else:
                agent, talk = f"PJSIP/70{i % 2}", rng.randint(20, 200)
                f.write(f"{t + wait}|c{i}|ast|{agent}|CONNECT|{wait}|x|1\n")
                f.write(f"{t + wait + talk}|c{i}|ast|{agent}|COMPLETECALLER|{wait}|{talk}|1\n")


def test_three_brokers_lose_a_leader_and_a_rolling_upgrade_lose_and_double_nothing(tmp_path: Path):
    started_at = time.monotonic()
    cluster = LocalCluster(port=free_kafka_port(span=6), brokers=3, data_dir=tmp_path / "kafka")
    where = ["--port", str(cluster.port), "--data-dir", str(cluster.data_dir)]
    started = kafka_cli("start", "--brokers", "3", *where)
    if started.returncode != 0:  # leave no broker behind
        kafka_cli("stop", "--data-dir", str(cluster.data_dir))
        pytest.fail(started.stderr[-3000:])
    cluster_ready_s = time.monotonic() - started_at
    assert [line.split(":")[0] for line in started.stdout.splitlines()] == [
        "broker 1",
        "broker 2",
        "broker 3",
    ]
    env = Env(cluster, tmp_path)
    extra = {"CCMON_REPLICATION_FACTOR": "3", "CCMON_SESSION_TIMEOUT_S": "6"}
    procs: list[subprocess.Popen] = []
    workers: list[Worker] = []
    try:
        recording = tmp_path / "sim.jsonl"
        lines = len(record_flat(env, recording, SEED, BACKFILL_S, RATE))
        workers += [Worker.launched(env, **extra), Worker.launched(env, **extra)]
        for w in workers:
            w.wait_ready()

        queue_log, base = tmp_path / "queue_log", int(time.time()) - 3600
        chunk = ASTERISK_CALLS // 3
        queue_log_calls(queue_log, base, range(0, chunk))
        ingester = subprocess.Popen(
            [sys.executable, "-m", "streams", "ingest", "asterisk", "--queue-log", str(queue_log)]
            + ["--follow", "--source", "pbx1", "--quiet"],
            cwd=ROOT,
            env=env.vars(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        replay = subprocess.Popen(
            [sys.executable, "-m", "streams", "replay", str(recording), "--speed", str(SPEED)],
            cwd=ROOT,
            env=env.vars(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs += [ingester, replay]
        watch = Standstill(workers)

        def counted() -> float:
            return sum(total_events(w.scrape()) for w in workers)

        def progress(share: float, what: str) -> None:
            wait_until(lambda: counted() >= share * lines, timeout=180, what=what, check=workers[0].check)

        # 1. the broker leading the most partitions dies (SIGKILL: no controlled shutdown)
        progress(0.2, "a fifth of the recording before the kill")
        leaders = leader_counts(cluster, env.prefix)
        victim_id = leaders.most_common(1)[0][0]
        victim: LocalKafka = cluster.nodes[victim_id - 1]
        assert victim.kill() is not None
        killed_at = time.monotonic()
        queue_log_calls(queue_log, base, range(chunk, 2 * chunk))

        # 2. ... and comes back later
        progress(0.45, "input processed with a broker down")
        # the workers' polls span two probes (CCMON_BROKER_PROBE_S, 2 s by default) with it down
        wait_until(lambda: watch.broker[-1][0] > killed_at + 4.0, timeout=30, what="two probes")
        victim.wait_ready(victim.launch())
        restarted_at = time.monotonic()
        wait_until(
            lambda: fully_replicated(cluster, env.prefix), timeout=120, what="the ISR to be full again"
        )

        # 3. a rolling upgrade: another broker stops cleanly and starts again
        progress(0.6, "input after the restart")
        other = next(n for n in cluster.nodes if n.node_id != victim_id)
        other.stop()
        stopped_at = time.monotonic()
        queue_log_calls(queue_log, base, range(2 * chunk, ASTERISK_CALLS))
        progress(0.75, "input processed with the other broker down")
        other.wait_ready(other.launch())
        upgraded_at = time.monotonic()

        replayed, err = replay.communicate(timeout=300)
        assert replay.returncode == 0, err[-3000:]
        input_done = time.monotonic()
        sent = re.search(r"(\d+) messages from ", err)
        assert sent and int(sent.group(1)) == lines, err[-2000:]
        ingester.send_signal(signal.SIGTERM)
        ingested_out, err = ingester.communicate(timeout=60)
        assert ingester.returncode == 0, err[-3000:]
        ingested = summary_events(ingested_out + err)
        assert ingested >= 3 * ASTERISK_CALLS
        watch.stop.set()

        # nothing lost, nothing doubled: a worker that never saw a failure reads every event once
        n = lines + ingested
        reference = reference_worker(env, **extra)
        workers.append(reference)
        ref = reference.wait_settled(lambda m: total_events(m) == n, timeout=180, what="the reference run")
        assert total_events(ref) == n
        ref_state = state_series(ref)
        assert len(ref_state) > 100
        two = workers[:2]
        wait_until(
            lambda: check(two, ref_state) is None, timeout=180, what="the workers to equal the reference"
        )
        assert sum(total_events(w.scrape()) for w in two) >= n  # every event reached a worker

        after_kill = watch.longest(killed_at, restarted_at)
        after_stop = watch.longest(stopped_at, upgraded_at)
        print(
            f"\n3 brokers (ready after {cluster_ready_s:.1f} s), {lines} simulator events + {ingested} "
            f"Asterisk events; leaders per broker before the kill {dict(leaders)}; broker {victim_id} "
            f"SIGKILLed: counters stood still for up to {after_kill:.1f} s until its restart "
            f"({restarted_at - killed_at:.1f} s later); broker {other.node_id} stopped cleanly: up to "
            f"{after_stop:.1f} s (restarted {upgraded_at - stopped_at:.1f} s later); input done "
            f"{input_done - started_at:.0f} s into the test, all of it {time.monotonic() - started_at:.0f} s"
        )
        assert stopped_at < input_done, "the rolling upgrade came after the input: not mid-stream"
        # two brokers of three answer: no worker may call the cluster unreachable (ccmon_broker_up
        # 0, /health 503) while one is down, SIGKILLed or stopped
        spans = (("SIGKILLed", killed_at, restarted_at), ("stopped", stopped_at, upgraded_at))
        for what, start, end in spans:
            down = watch.broker_down(start, end)
            assert not down, (
                f"one broker of three {what}: {len(down)} polls said the cluster was down; "
                f"(s after, worker, ccmon_broker_up, /health) first {down[:2]}, last {down[-1]}"
            )
        # the command finds every broker in the data dir, without being told how many
        status = kafka_cli("status", "--data-dir", str(cluster.data_dir))
        assert status.returncode == 0 and status.stdout.count("running (pid") == 3, status.stdout
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for w in workers:
            w.stop(signal.SIGKILL)
        stopped = kafka_cli("stop", "--data-dir", str(cluster.data_dir))
    assert stopped.returncode == 0 and stopped.stdout.count("stopped (pid") == 3, stopped.stdout
    assert all(node.pid() is None for node in cluster.nodes)
    assert kafka_cli("status", "--data-dir", str(cluster.data_dir)).returncode == 3
