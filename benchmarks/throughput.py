"""ccmon's benchmark on the real local Kafka: every figure of issue 5 from one run.

    make bench            (or: python -m benchmarks.throughput [--events N] [--quick])

Measured in this order, on a broker of its own (port 39092 unless CCMON_BENCH_KAFKA_PORT):
- raw:      a plain aiokafka consumer (getmany, large batches) reading and orjson-decoding N
            pre-produced events, the ceiling;
- core:     the pure two-stage core in-process on the same events, no Kafka; and in fresh processes,
            interpreted and compiled with mypyc (benchmarks/compiled_core.py, as the wheel builds it);
- worker:   a cold ``ccmon worker`` from its first consumed event until ``ccmon_events_total``
            has all N (stage 1), and for 1, 2 and 4 workers (below) until their state on /metrics
            (contact counters and wait counts) equals what the pure core computes from the same
            events: the single worker's is the headline ``events_per_s``. Every worker runs the core
            compiled with mypyc, as the wheel ships it, and must say so on /health (else the run
            stops); one more single worker on the interpreted core gives ``events_per_s_interpreted``;
- naive:    a naive faust-streaming agent (one table update per event) on the same N;
- peer:     a quix-streams job (benchmarks/peer_quix.py: per-queue tumbling counts of offered,
            answered and abandoned, state and changelog on) on the same N;
- scale-out: 1, 2 and 4 worker processes in one consumer group on the same N, until their summed
            state equals the pure core's;
- latency:  produce time → visible in /metrics (``ccmon_contacts_offered_total``), at a steady
            2,000 and then 10,000 events/s for 60 s each, into a running worker on topics of its own;
- restart:  a worker holding a busy day (1,000 agents, ~300,000 contacts over 10 h, 24 h retention;
            ``--restart-contacts``, ``--restart-agents``), stopped with SIGTERM and then with SIGKILL:
            seconds from the new process's start until /health is ready and every cumulative KPI
            series on /metrics equals the one before the stop; the slower of the two, and the
            changelog it had to read;
- scrape:   /metrics with 1,000 queues × 2 channels live (median of 20 scrapes);
- memory:   worker RSS growth per open contact over 100,000 open contacts; the customer stage's
            heap per customer (benchmarks/customers.py; in-process, runnable alone);
- pollers:  the event-loop stall while 20 agents pages poll /api/agents at 5,000 agents at the same
            instant, with a render per poll (before issue 21) and with the shared render, against
            a 2-byte body's (benchmarks/pollers.py; in-process, runnable alone).
- replicated: one worker on a local three-broker cluster (ports 39102-39107 unless
            CCMON_BENCH_CLUSTER_PORT), every topic replicated 3 times with min.insync.replicas 2
            and every write acks=all, on the same N and measured as the one-worker row it stands
            beside. ``--only replicated`` runs it with only the rows every run has.
Prints a table, writes JSON (``--json``) and ends with one line of key=value pairs. It asserts
nothing about speed: the goals are read off the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Final

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks import compiled_core, customers, pollers, prices, workload
from streams.config import Settings, load
from streams.core.intake import Record
from streams.dev.harness import NotReady, ProcessExited, Service, wait_stable, wait_until
from streams.dev.kafka_local import LocalCluster, LocalKafka
from streams.dev.local_pipeline import LocalPipeline
from streams.dev.net import port_free
from streams.faust_ext.snapshot import offsets_of as snapshot_offsets
from streams.kafka.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
EVENTS_TOTAL = re.compile(rb"^ccmon_events_total\{[^}]*\} ([0-9.e+]+)$", re.M)
CONSUMER_LAG = re.compile(rb"^ccmon_consumer_lag_messages\{[^}]*\} ([0-9.e+]+)$", re.M)
OFFERED = re.compile(rb"^ccmon_contacts_offered_total\{[^}]*\} ([0-9.e+]+)$", re.M)
#: the worker's ccmon_pipeline_delay_seconds: (sum or count, hop, value)
DELAY = re.compile(rb'^ccmon_pipeline_delay_seconds_(sum|count)\{hop="([a-z0-9_]+)"\} ([0-9.e+]+)$', re.M)
# every contact counter and wait count, but not "handled": an ACW timeout that falls due with the
# last inputs completes at the next sweep, a timer (CCMON_SWEEP_INTERVAL_S), which would be timed too
STATE = re.compile(
    rb"^(?:ccmon_contacts_(?!handled)\w+_total|ccmon_wait_seconds_count)\{[^}]*\} ([0-9.e+]+)$", re.M
)
# every cumulative KPI series (counters, histograms, waiting contacts, agents per state), as a line:
# the restart row's "equal to the one before"; windowed gauges and the oldest wait move with the clock
KPI_LINE = re.compile(
    rb"^(?:ccmon_contacts_\w+_total|ccmon_offers_missed_total|ccmon_(?:wait|handle)_seconds_\w+"
    rb"|ccmon_queue_waiting_contacts|ccmon_agents)\{[^}]*\} \S+$",
    re.M,
)
TIMEOUT_S = 1200.0


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def http_get(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def delay_totals(port: int) -> dict[tuple[str, str], float]:
    """(sum or count, hop) → value of the worker's ``ccmon_pipeline_delay_seconds``."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")
    return {(kind.decode(), hop.decode()): float(v) for kind, hop, v in DELAY.findall(body)}


def hop_means(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    """Mean delay per batch at each hop between two ``delay_totals``: where a phase's time went
    (from the Kafka timestamp to stage 1 taking the batch, to stage 1 done; from stage 1's facts to
    stage 2 taking them, to stage 2 done)."""
    out = {}
    for kind, hop in after:
        if kind == "count":
            n = after[("count", hop)] - before.get(("count", hop), 0.0)
            if n > 0:
                out[hop] = (after[("sum", hop)] - before.get(("sum", hop), 0.0)) / n
    return out


def metric_sum(pattern: re.Pattern, body: bytes) -> float:
    return sum(float(v) for v in pattern.findall(body))


def worker_count(port: int) -> float:
    """Events accounted for: counted by stage 1 (``ccmon_events_total``) less any message still
    unread on the inputs or the facts topic, so that all N count only once stage 2 has them too."""
    body = http_get(f"http://127.0.0.1:{port}/metrics")
    return metric_sum(EVENTS_TOTAL, body) - metric_sum(CONSUMER_LAG, body)


def state_fingerprint(port: int) -> float:
    """The sum of the contact counters and wait counts this worker exports: it exports only the
    queues it owns, so the sum over workers is exact and reaches the single worker's only when all
    is processed (``ccmon_events_total`` would count twice what a worker handled and then lost in a
    rebalance before committing)."""
    return metric_sum(STATE, http_get(f"http://127.0.0.1:{port}/metrics"))


def scale_out(run: Run, k: int, n: int, expected: float, core: str = "compiled") -> float:
    """Events/s of ``k`` workers in one group, each with the ``core`` given: from the first event
    any of them counted until their summed state equals what the pure core computed from the same
    input."""
    _, env_k = run.settings(f"w{k}x" if core == "compiled" else f"w{k}{core[0]}", inputs="in")
    procs = [run.proc(env_k, tag=f"{i}", core=core).start() for i in range(k)]
    try:
        first = None
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            counted = state = 0.0
            for p in procs:
                p.check()
                try:
                    body = http_get(f"http://127.0.0.1:{p.port}/metrics")
                except OSError:
                    continue
                counted += metric_sum(EVENTS_TOTAL, body)
                state += metric_sum(STATE, body)
            now = time.perf_counter()
            if counted > 0 and first is None:
                first = now
            if first is not None and state == expected:
                run.check_core(*procs)
                return n / (now - first)
            time.sleep(0.02)
        raise SystemExit(f"{k} workers did not reach the single worker's state in {TIMEOUT_S:.0f} s")
    finally:
        for p in procs:
            p.stop()


def kpi_series(port: int) -> set[bytes]:
    return set(KPI_LINE.findall(http_get(f"http://127.0.0.1:{port}/metrics")))


def ready_with(port: int, series: set[bytes]) -> bool:
    """/health says ready and /metrics has exactly ``series``."""
    try:
        http_get(f"http://127.0.0.1:{port}/health", timeout=2)
        return kpi_series(port) == series
    except OSError:  # refused while starting, 503 while recovering
        return False


def settled(worker: Service, n: int, quiet_s: float) -> set[bytes]:
    """The worker's KPI series once it has counted all ``n`` inputs and they stayed the same for
    ``quiet_s`` (longer than a sweep, which completes wrap-ups that fell due with the last inputs)."""
    timed_until([worker], worker_count, n)
    return wait_stable(
        lambda: kpi_series(worker.port),
        quiet_s=quiet_s,
        timeout=TIMEOUT_S,
        check=worker.check,
        interval=0.5,
        what=f"the worker's KPI series (log {worker.log})",
    )


async def changelog_size(s: Settings, kafka: LocalKafka, snapshots: Path) -> tuple[int, int, int]:
    """Messages and bytes (log segments on the broker's disk) of the deployment's changelog topics,
    and how many of those messages come after what the snapshots cover: what a restart reads."""
    dirs = [d for d in (kafka.data_dir / "logs").glob(f"{s.app_id}-*-changelog-*") if d.is_dir()]
    parts = [TopicPartition(d.name.rsplit("-", 1)[0], int(d.name.rsplit("-", 1)[1])) for d in dirs]
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends, starts = await consumer.end_offsets(parts), await consumer.beginning_offsets(parts)
    finally:
        await consumer.stop()
    covered: dict[TopicPartition, int] = {}
    for f in snapshots.glob("*.snap"):
        if (header := snapshot_offsets(f)) is not None:
            topic, offsets = header
            covered.update({TopicPartition(topic, p): o + 1 for p, o in offsets.items() if o is not None})
    size = sum(f.stat().st_size for d in dirs for f in d.glob("*.log"))
    tail = sum(ends[tp] - max(starts[tp], covered.get(tp, 0)) for tp in parts)
    return sum(ends[tp] - starts[tp] for tp in parts), size, tail


def restart(run: Run, contacts: int, agents: int) -> dict[str, float | int]:
    """A busy day in one worker's state, then SIGTERM and SIGKILL: seconds from process start until
    ready with every KPI series as before, for each; the changelog read."""
    s, env = run.settings("day")
    asyncio.run(ensure_topics(s))
    produced = [0]

    def counted(events: Iterator[workload.Event]) -> Iterator[workload.Event]:
        for e in events:
            produced[0] += 1
            yield e

    t0 = time.perf_counter()
    asyncio.run(workload.produce(s, counted(workload.busy_day(contacts, agents, 10, time.time()))))
    n = produced[0]
    took = time.perf_counter() - t0
    say(f"restart: a busy day of {contacts} contacts, {agents} agents: {n} events produced in {took:.0f} s")
    worker = run.proc(env, tag="day").start()
    try:
        t0 = time.perf_counter()
        before = settled(worker, n, quiet_s=max(3.0, 2 * run.sweep_s))
        say(f"restart: state built in {time.perf_counter() - t0:.0f} s, {len(before)} KPI series")
        snapshots = Path(env["CCMON_DATA_DIR"]) / "worker" / "snapshots" / env["CCMON_APP_ID"]
        if run.snapshot_s > 0:  # as on a worker that has run for a while: its last snapshot holds the state
            settled_at = time.time()
            deadline = time.monotonic() + 10 * run.snapshot_s + 60
            while (
                len([f for f in snapshots.glob("*.snap") if f.stat().st_mtime > settled_at]) < 3
            ):  # every table's
                worker.check()
                if time.monotonic() > deadline:
                    raise SystemExit(f"no snapshot written after the state settled; see {worker.log}")
                time.sleep(0.5)
            sizes = ", ".join(
                f"{f.name} {f.stat().st_size / 2**20:.1f} MiB" for f in snapshots.glob("*.snap")
            )
            say(f"restart: snapshots {sizes}")
        out: dict[str, float | int] = {"restart_events": n, "restart_series": len(before)}
        for how in (signal.SIGTERM, signal.SIGKILL):
            worker.stop(how, grace_s=120)
            assert isinstance(run.kafka, LocalKafka)  # the restart phase runs on the single broker
            messages, size, tail = asyncio.run(changelog_size(s, run.kafka, snapshots))
            worker = run.proc(env, tag=f"day-{how.name}").start()
            started = time.perf_counter()
            wait_until(
                partial(ready_with, worker.port, before),
                timeout=TIMEOUT_S,
                check=worker.check,
                interval=0.05,
                what=f"a ready worker with the same series after {how.name} (log {worker.log})",
            )
            took = time.perf_counter() - started
            run.check_core(worker)
            key = "sigterm" if how == signal.SIGTERM else "sigkill"
            out[f"restart_{key}_s"] = round(took, 2)
            out["restart_changelog_messages"], out["restart_changelog_bytes"] = messages, size
            out[f"restart_{key}_tail_messages"] = tail
            say(
                f"restart after {how.name}: ready with the same {len(before)} series in {took:.2f} s; "
                f"changelog {messages:,} messages ({size / 2**20:.1f} MiB), {tail:,} after the snapshots"
            )
        out["restart_ready_s"] = max(out["restart_sigterm_s"], out["restart_sigkill_s"])
        return out
    finally:
        worker.stop()


def offered_count(port: int) -> float:
    """The worker's offered total: the one family asked for (``name[]``), so that the latency
    phases' scraper neither makes the worker write nor the bench parse the whole page."""
    return metric_sum(
        OFFERED, http_get(f"http://127.0.0.1:{port}/metrics?name[]=ccmon_contacts_offered_total")
    )


def naive_count(port: int) -> float:
    return float(json.loads(http_get(f"http://127.0.0.1:{port}/count"))["handled"])


def timed_until(procs: list[Service], count: Callable[[int], float], n: int) -> float:
    """Seconds from the first event counted (by any process) until all ``n`` are counted."""
    first = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        total = 0.0
        for p in procs:
            p.check()
            try:
                total += count(p.port)
            except OSError:
                pass
        now = time.perf_counter()
        if total > 0 and first is None:
            first = now
        if first is not None and total >= n:
            return now - first
        time.sleep(0.02)
    raise SystemExit(f"not every event was counted within {TIMEOUT_S:.0f} s; see {procs[0].log}")


@dataclass
class Run:
    """One benchmark run: its broker, topic prefix and a fresh deployment per measurement.

    Workers run the core as users run it: the wheel's, compiled with mypyc (``compiled_tree``, a
    copy of the package with the extension modules, first on the path); ``core="interpreted"``
    runs one from the source tree. Each worker's /health says which core it imported, and
    ``check_core`` stops the benchmark if that is not the one asked for."""

    kafka: LocalKafka | LocalCluster
    prefix: str
    workdir: Path
    next_port: int = 17000
    sweep_s: float = load(os.environ).batching.sweep_interval_s
    snapshot_s: float = load(os.environ).batching.snapshot_interval_s
    compiled_tree: Path | None = None
    cores: dict[int, str] = field(default_factory=dict)  # web port → the core that worker is to run

    def settings(self, name: str, inputs: str | None = None) -> tuple[Settings, dict[str, str]]:
        """A deployment ``name`` (own group, facts and changelogs) reading the inputs of ``inputs``."""
        src = f"{self.prefix}{inputs or name}"
        app = f"{self.prefix}{name}"
        env = {
            **os.environ,
            "CCMON_BROKER": ";".join(f"kafka://{a}" for a in self.kafka.address.split(",")),
            "CCMON_REPLICATION_FACTOR": str(min(3, getattr(self.kafka, "brokers", 1))),
            "CCMON_APP_ID": app,
            "CCMON_CALLS_TOPIC": f"{src}.calls",
            "CCMON_CHATS_TOPIC": f"{src}.chats",
            "CCMON_AGENTS_TOPIC": f"{src}.agents",
            "CCMON_DEAD_LETTER_TOPIC": f"{app}.dead",
            "CCMON_FACTS_TOPIC": f"{app}.facts",
            "CCMON_LOG_LEVEL": "warning",
            "CCMON_DATA_DIR": str(self.workdir / app),
        }
        return load(env), env

    def proc(
        self, env: dict[str, str], module: str = "streams", tag: str = "worker", core: str = "compiled"
    ) -> Service:
        """A worker (or the naive agent, the peer) on a port of its own, not started yet; a worker
        with the ``core`` it is to import (compiled or interpreted)."""
        self.next_port += 1
        while not port_free(self.next_port):  # a process left over from another run holds it
            self.next_port += 1
        argv = [sys.executable, "-m", module] + (["worker"] if module == "streams" else [])
        cwd, env = ROOT, {**env, "CCMON_WEB_PORT": str(self.next_port)}
        if module == "streams" and core == "compiled":
            if self.compiled_tree is None:
                raise SystemExit("bench: the workers run the compiled core, which was not built")
            cwd = self.compiled_tree  # `-m` puts the working directory first on the path
            env["PYTHONPATH"] = os.pathsep.join([str(self.compiled_tree), str(ROOT)])
        service = Service(
            argv,
            port=self.next_port,
            env=env,
            cwd=cwd,
            log=self.workdir / f"{env['CCMON_APP_ID']}-{tag}-{self.next_port}.log",
            name=f"{module} {tag} ({core} core)" if module == "streams" else f"{module} {tag}",
        )
        self.cores[self.next_port] = core
        return service

    def check_core(self, *workers: Service) -> None:
        """Stop the benchmark unless every worker imported the core it was started for."""
        for w in workers:
            try:
                body = http_get(f"http://127.0.0.1:{w.port}/health")
            except urllib.error.HTTPError as e:  # 503 while not ready: the body says the core all the same
                body = e.read()
            ran = json.loads(body).get("core")
            if ran != self.cores[w.port]:
                raise SystemExit(f"bench: {w.name} ran the {ran} core; see {w.log}")


async def raw_consume(s: Settings, n: int) -> float:
    consumer = AIOKafkaConsumer(
        s.calls_topic,
        s.chats_topic,
        s.agents_topic,
        bootstrap_servers=s.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                for r in records:
                    try:
                        orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        pass
                seen += len(records)
    finally:
        await consumer.stop()
    assert started is not None  # n > 0 events were read
    return n / (time.perf_counter() - started)


def core_state(p: LocalPipeline) -> float:
    """What ``state_fingerprint`` sums over all workers once every event is in, computed by the pure
    core on the same events: contact counters (but "handled", dequeued by reason included) and wait
    counts."""
    total = 0.0
    for queue, channel in p.store.series():
        view = p.store.view(queue, channel, time.time())
        total += sum(v for name, v in view.counters.items() if name != "handled")
        total += sum(view.dequeued.values())  # ccmon_contacts_dequeued_total matches STATE too
        total += sum(sum(raw[:-1]) for raw in view.wait_hist.values())
    return total


def as_records(s: Settings, events: list[workload.Event]) -> list[Record]:
    """The events as the worker would consume them: partitioned by key, offsets per partition."""
    return list(iter_records(s, events))


def iter_records(s: Settings, events: list[workload.Event]) -> Iterator[Record]:
    names = workload.topic_names(s)
    offsets: dict = {}
    for topic, key, value in events:
        part = zlib.crc32(key) % s.partitions
        off = offsets[(topic, part)] = offsets.get((topic, part), -1) + 1
        yield Record(names[topic], part, off, key, value)


def core_run(s: Settings, events: list[workload.Event]) -> tuple[float, LocalPipeline]:
    """The pure core's events/s on ``events`` fed as the worker gets them, and its state after."""
    records = as_records(s, events)
    p = LocalPipeline(s)
    started = time.perf_counter()
    now = time.time()
    for i in range(0, len(records), s.batching.size):
        p.feed(records[i : i + s.batching.size], now=now)
    return len(records) / (time.perf_counter() - started), p


def core_rate(s: Settings, events: list[workload.Event]) -> tuple[float, float]:
    rate, p = core_run(s, events)
    return rate, core_state(p)


def core_bytes_per_open_contact(s: Settings, open_n: int, queues: int) -> float:
    """Python heap (tracemalloc) per contact held open by the pure core, both stages: a figure
    free of the allocator and buffer noise that moves the worker's RSS by ±150 B per contact.
    Each batch's records are made inside the measure, as a worker gets them from its consumer: a
    record's offset is kept as the contact's ``decided``, an int the interpreted core shares with
    the record and the compiled one boxes anew; either way one int per contact that a worker holds."""
    records = iter_records(s, workload.open_contacts(open_n, queues, int(time.time() * 1000)))
    size = s.batching.size
    p = LocalPipeline(s)
    now = time.time()
    p.feed(list(islice(records, size)), now=now)  # queues registered, tables warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        while batch := list(islice(records, size)):
            p.feed(batch, now=now)
        del batch
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / (open_n - size)
    finally:
        tracemalloc.stop()


def latency(
    env: dict[str, str], worker: Service, rate: float, seconds: float, warm_s: float = 0.0
) -> tuple[float, float, float, dict[str, float], float]:
    """Produce ``rate`` events/s for ``warm_s`` + ``seconds`` to a worker (benchmarks/loadgen.py,
    a niced process of its own with the phase's settings ``env``), through both stages: the k-th
    offer sent is visible at the first scrape whose ``ccmon_contacts_offered_total`` (summed) has
    grown by k. Scrapes every ``POLL_S`` (50 ms), the resolution. Returns p50 and p99 of the offers
    sent after the first ``warm_s`` seconds (the steady load: the start of a rate, a fresh worker's
    first fetches or the step from another rate, is not what a running contact center sees), the
    p99 of all offers, start included; the worker's mean delay per batch at each hop, start
    included (``hop_means``); and the rate the generator achieved."""
    base = offered_count(worker.port)
    delays = delay_totals(worker.port)
    seen: list[tuple[float, float]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            t0 = time.time()
            try:
                seen.append((t0, offered_count(worker.port) - base))
            except OSError:
                continue
            time.sleep(POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        generator = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", str(rate), str(seconds), str(warm_s)],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            capture_output=True,
            timeout=TIMEOUT_S,
        )
        if generator.returncode != 0:
            raise SystemExit(f"bench: the load generator failed:\n{generator.stderr.decode()[-3000:]}")
        sent = orjson.loads(generator.stdout.splitlines()[-1])
        offer_times: list[float] = sent["offers"]
        n, warm_offers = len(offer_times), sent["warm_offers"]
        try:  # every offer visible, or the one that is not is named below
            wait_until(lambda: bool(seen) and seen[-1][1] >= n, timeout=120, what=f"{n} offers visible")
        except NotReady:
            pass
    finally:
        done.set()
        poller.join(timeout=10)
    lat, j = [], 0
    for k, t_sent in enumerate(offer_times, start=1):
        while j < len(seen) and seen[j][1] < k:
            j += 1
        if j == len(seen):
            raise SystemExit(f"offer {k} of {n} never became visible; see {worker.log}")
        lat.append(max(0.0, seen[j][0] - t_sent))
    steady = sorted(lat[warm_offers:])
    lat.sort()
    say(
        f"latency over {n - warm_offers} offers of {sent['events'] - int(rate * warm_s)} events after "
        f"{warm_s:g} s warm; the generator sent {sent['sent_per_s']:,.0f} events/s of {rate:,.0f}"
    )
    return (
        steady[len(steady) // 2],
        pct99(steady),
        pct99(lat),
        hop_means(delays, delay_totals(worker.port)),
        sent["sent_per_s"],
    )


#: the customer key of the row that prices the customer features (any 32 bytes: a bench secret)
PRICE_KEY: Final = b"bench-customer-key-0123456789abc"

#: the latency phases' scrape interval (the resolution of what they measure). Each scrape of the
#: one family makes the worker view every series that changed with only its records (~0.7 ms);
#: before ``name[]`` computed only what it shows, it graded every ended wait (~7 ms at 2,000/s,
#: 87 ms after 100,000 events), and every 20 ms took a third of the loop at 2,000/s
POLL_S: Final = 0.05

#: issue 27's latency goals: p99 at these fractions of the worker's capacity (events_per_s)
LATENCY_GOALS: Final = ((0.1, 0.3), (0.5, 1.0), (0.8, 3.0))


def latency_rates(capacity: float) -> list[tuple[int, str]]:
    """The latency phases' rates and result tags: the goals' fractions of ``capacity``, then the
    absolute rows of the earlier runs (each measured on a fresh worker)."""
    fractions = [(max(1, round(f * capacity)), f"_c{round(f * 100)}") for f, _ in LATENCY_GOALS]
    return [*fractions, (2000, ""), (10_000, "_10k")]


def pct99(values: list[float]) -> float:
    """The 99th percentile of sorted ``values`` (nearest rank)."""
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def scrape_until(worker: Service, enough: Callable[[bytes], bool], what: str) -> bytes:
    """Scrape /metrics every 0.2 s until ``enough`` of the body; returns that body."""

    def look() -> bytes | None:
        body = worker.metrics_text()
        return body if enough(body) else None

    body = wait_until(
        look,
        timeout=TIMEOUT_S,
        check=worker.check,
        interval=0.2,
        what=f"{what} on /metrics (log {worker.log})",
    )
    assert body is not None
    return body


def scrape_and_memory(run: Run, queues: int, open_n: int) -> tuple[float, int, float]:
    """A worker with ``queues`` × 2 live series: median /metrics time, then RSS growth per open contact."""
    s, env = run.settings("mem")
    asyncio.run(ensure_topics(s))
    worker = run.proc(env).start()
    try:
        now_ms = int(time.time() * 1000)
        series = workload.queue_series(queues, now_ms)
        asyncio.run(workload.produce(s, series))
        timed_until([worker], worker_count, len(series))
        url = f"http://127.0.0.1:{worker.port}/metrics"
        # stage 2 may still be applying the last facts: time the scrape only with every series live
        offered_re = re.compile(rb"^ccmon_contacts_offered_total\{", re.M)
        body = scrape_until(
            worker, lambda b: len(offered_re.findall(b)) >= 2 * queues, f"{2 * queues} offered series"
        )
        samples = body.count(b"\nccmon_")
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            http_get(url)
            times.append(time.perf_counter() - t0)
        # both readings at rest, a sweep interval on: after each sweep the worker gives the heap's
        # free pages back (streams/worker/allocator.py), what a long-running worker holds
        rest = run.sweep_s + 2
        time.sleep(rest)
        rss0 = worker.rss()
        asyncio.run(workload.produce(s, workload.open_contacts(open_n, queues, now_ms)))
        waiting_re = re.compile(rb"^ccmon_queue_waiting_contacts\{[^}]*\} ([0-9.e+]+)$", re.M)
        scrape_until(worker, lambda b: metric_sum(waiting_re, b) >= open_n, f"{open_n} waiting contacts")
        time.sleep(rest)
        rss1 = worker.rss()
        say(
            f"scrape: {samples} samples; rss {rss0 / 2**20:.0f} MiB → {rss1 / 2**20:.0f} MiB "
            f"with {open_n} open"
        )
        return statistics.median(times), samples, (rss1 - rss0) / open_n
    finally:
        worker.stop()


def replicated(run: Run, n: int, events: list[workload.Event], expected: float, port: int) -> float:
    """Events/s of one worker (compiled core) on a local three-broker cluster, every topic with
    replication 3 and min.insync.replicas 2, the worker's producer (facts, changelogs) acks=all
    and idempotent: the same N events and measure as the single-broker one-worker row."""
    cluster = LocalCluster(port=port, brokers=3, data_dir=run.workdir.parent / "bench-cluster")
    ours = all(node.pid() is None for node in cluster.nodes)
    say(cluster.start())
    try:
        on_cluster = Run(cluster, run.prefix, run.workdir, run.next_port, compiled_tree=run.compiled_tree)
        s, _ = on_cluster.settings("in")
        asyncio.run(ensure_topics(s))
        t0 = time.perf_counter()
        asyncio.run(workload.produce(s, events))
        say(f"produced {n} on 3 brokers (acks=all) in {time.perf_counter() - t0:.1f} s")
        rate = scale_out(on_cluster, 1, n, expected)
        run.next_port = on_cluster.next_port
        return rate
    finally:
        if ours:
            say(cluster.stop())


PHASES = ("interpreted", "latency", "naive", "peer", "scale", "restart", "memory", "pollers", "replicated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--events", type=int, default=200_000, help="events in the throughput runs (default 200000)"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: 20000 events, 10 s latency, one worker, a 5000-contact day",
    )
    ap.add_argument("--skip", default="", help=f"comma-separated phases to leave out: {', '.join(PHASES)}")
    ap.add_argument(
        "--only",
        choices=PHASES,
        help="run this phase alone, beside the rows every run has (raw consumer, core, one worker)",
    )
    ap.add_argument(
        "--restart-contacts",
        type=int,
        default=None,
        help="contacts of the restart row's busy day (default 300000; 5000 with --quick)",
    )
    ap.add_argument(
        "--restart-agents",
        type=int,
        default=None,
        help="agents of the restart row's busy day (default 1000; 100 with --quick)",
    )
    ap.add_argument("--kafka-port", type=int, default=int(os.environ.get("CCMON_BENCH_KAFKA_PORT", "39092")))
    ap.add_argument(
        "--cluster-port",
        type=int,
        default=int(os.environ.get("CCMON_BENCH_CLUSTER_PORT", "39102")),
        help="first port of the three-broker cluster (the replicated row takes it and the 5 above)",
    )
    ap.add_argument("--json", default="benchmarks/results.json", help="where to write the figures")
    args = ap.parse_args()
    n = 20_000 if args.quick else args.events
    lat_s = 10 if args.quick else 60
    warm_s = 5 if args.quick else 10  # at the rate before the measured part: the steady load
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    if args.only:
        skip = set(PHASES) - {args.only}
    unknown = skip - set(PHASES)
    if unknown:
        ap.error(f"--skip: unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    if args.restart_contacts is None:
        # the busy day: 300,000 contacts and 1,000 agents (~2 million events; the
        # simulator generates it in about a minute since its dispatch is indexed)
        args.restart_contacts = 5_000 if args.quick else 300_000
    if args.restart_agents is None:
        args.restart_agents = 100 if args.quick else 1_000
    scales = () if args.quick or "scale" in skip else (1, 2, 4)
    base = Path(os.environ.get("CCMON_DATA_DIR", "/tmp/ccmon-bench"))
    kafka = LocalKafka(port=args.kafka_port, data_dir=base / "bench-kafka")
    ours = kafka.pid() is None  # a broker someone else started stays up
    say(kafka.start())
    try:
        measure(args, Run(kafka, f"b{uuid.uuid4().hex[:6]}", base / "bench"), n, lat_s, warm_s, skip, scales)
    except (ProcessExited, NotReady) as e:  # a worker died or hung: its log says why, no traceback needed
        raise SystemExit(f"bench: {e}") from None
    finally:
        if ours:
            say(kafka.stop())


def measure(
    args: argparse.Namespace,
    run: Run,
    n: int,
    lat_s: int,
    warm_s: int,
    skip: set[str],
    scales: tuple[int, ...],
) -> None:
    """Every phase on one broker; prints the table and writes the JSON."""
    run.workdir.mkdir(parents=True, exist_ok=True)
    r: dict[str, float | int] = {"events": n}

    s, env = run.settings("w1", inputs="in")
    say(f"generating {n} events...")
    events = workload.mix(n)
    asyncio.run(ensure_topics(s))
    t0 = time.perf_counter()
    asyncio.run(workload.produce(s, events))
    say(f"produced {n} in {time.perf_counter() - t0:.1f} s")
    r["raw_events_per_s"] = round(asyncio.run(raw_consume(s, n)))
    say(f"raw consumer: {r['raw_events_per_s']:,} events/s")
    core, expected = core_rate(s, events)
    r["core_events_per_s"] = round(core)
    say(f"pure core: {r['core_events_per_s']:,} events/s")
    # issue 27: the customer features (issue 24) priced: the same events, the same run, with a
    # customer key (every other row runs without one, as a deployment without a key does)
    with_customers, _ = core_rate(load(env, customer_key=PRICE_KEY), events)
    r["core_customers_events_per_s"] = round(with_customers)
    r["customer_features_cost"] = round(1 - with_customers / core, 3)
    say(
        f"pure core with customer features: {r['core_customers_events_per_s']:,} events/s "
        f"({r['customer_features_cost']:.1%} less)"
    )
    # issue 27: first response and the EWT error on and off, and what a view's prediction and
    # grading cost at read time, on the same events (benchmarks/prices.py)
    r.update(prices.measure(events, load(env)))
    say(
        f"first response: {r['price_first_response_share']:.1%} of the core's time; EWT error: "
        f"{r['price_ewt_error_share']:.1%}; views of {r['price_series']} series: "
        f"{r['price_view_all_ms']} ms, {r['price_view_records_ms']} ms without prediction and grading"
    )
    try:
        _, compile_s = compiled_core.build()
        run.compiled_tree = compiled_core.tree(run.workdir / "compiled-core")
    except (RuntimeError, ImportError) as e:  # no compiler, or no mypy: the workers would run another core
        raise SystemExit(
            f"bench: the workers run the core compiled with mypyc, as the wheel ships it, and it did not "
            f"build (install the bench extra and a C compiler): {e}"
        ) from None
    say(
        f"core compiled with mypyc in {compile_s:.0f} s" if compile_s else "core compiled with mypyc (cached)"
    )
    # each core in a fresh process, with CPython's collector thresholds (as every run before), then
    # with the worker's (streams/worker/collector.py), as a worker runs it: a third of the first
    # rows' time is full collections walking the run's long-lived objects
    for command, suffix, label in (
        ("rate", "", "in a fresh process"),
        ("rate-gc", "_worker_gc", "with the worker's collector"),
    ):
        for compiled in (False, True):
            rate = compiled_core.run(command, n, compiled=compiled)["events_per_s"]
            r[f"core_{'compiled' if compiled else 'interpreted'}{suffix}_events_per_s"] = round(rate)
        say(
            f"pure core {label}: {r[f'core_interpreted{suffix}_events_per_s']:,} events/s interpreted, "
            f"{r[f'core_compiled{suffix}_events_per_s']:,} compiled"
        )

    worker = run.proc(env).start()
    try:
        elapsed = timed_until([worker], worker_count, n)
        run.check_core(worker)
        r["stage1_events_per_s"] = round(n / elapsed)
        say(f"worker, stage 1 counted: {r['stage1_events_per_s']:,} events/s")
    finally:
        worker.stop()
    for phase, module, key, what in (
        ("naive", "benchmarks.naive_faust", "naive_faust_events_per_s", "naive faust agent"),
        ("peer", "benchmarks.peer_quix", "peer_quix_events_per_s", "quix-streams peer"),
    ):
        if phase not in skip:  # both report how many inputs they handled on /count
            _, other_env = run.settings(phase, inputs="in")
            other = run.proc(other_env, module=module, tag=phase).start()
            try:
                r[key] = round(n / timed_until([other], naive_count, n))
            finally:
                other.stop()
            say(f"{what}: {r[key]:,} events/s")

    for k in scales or (1,):  # one worker (compiled core), measured to its state, is the headline figure
        r[f"workers_{k}_events_per_s"] = round(scale_out(run, k, n, expected))
        say(f"{k} worker(s): {r[f'workers_{k}_events_per_s']:,} events/s")
        if k == 1 and "interpreted" not in skip:  # the same worker on the source tree's core, next to it
            r["events_per_s_interpreted"] = round(scale_out(run, 1, n, expected, core="interpreted"))
            say(f"1 worker, interpreted core: {r['events_per_s_interpreted']:,} events/s")
    r["events_per_s"] = r["workers_1_events_per_s"]
    if "latency" not in skip:  # on topics of its own, so the other phases keep exactly N inputs
        # issue 27: the rates are fractions of this run's one-worker capacity, so that the goals
        # hold on any machine; the absolute 2,000 and 10,000/s rows stay for the history
        capacity = r["workers_1_events_per_s"]  # the loop above always runs one worker
        r["latency_capacity_events_per_s"] = capacity
        for i, (rate, tag) in enumerate(latency_rates(capacity)):
            # each rate on a fresh worker and topics of its own: a phase near capacity leaves
            # state and a backlog behind that the next one would be measured through
            s_lat, env_lat = run.settings(f"lat{i}")
            asyncio.run(ensure_topics(s_lat))
            live = run.proc(env_lat).start()
            try:
                live.wait_ready(timeout=120)
                run.check_core(live)
                say(f"latency at {rate}/s for {lat_s} s after {warm_s} s at that rate, fresh worker...")
                p50, p99, p99_all, hops, sent_rate = latency(env_lat, live, rate, lat_s, warm_s)
                r[f"p50_latency{tag}_s"], r[f"p99_latency{tag}_s"] = round(p50, 3), round(p99, 3)
                r[f"latency{tag}_sent_events_per_s"] = round(sent_rate)
                r[f"p99_latency{tag}_with_start_s"] = round(p99_all, 3)
                for hop, mean in sorted(hops.items()):
                    r[f"delay{tag}_{hop}_s"] = round(mean, 3)
            finally:
                live.stop()

    if "replicated" not in skip:  # beside the one-worker row above, on the same events
        r["replicated_events_per_s"] = round(replicated(run, n, events, expected, args.cluster_port))
        r["replicated_ratio"] = round(r["replicated_events_per_s"] / r["workers_1_events_per_s"], 3)
        say(f"1 worker, 3 brokers, replication 3, acks=all: {r['replicated_events_per_s']:,} events/s")
    r["ratio_to_raw"] = round(r["events_per_s"] / r["raw_events_per_s"], 3)
    r["ratio_to_core"] = round(r["events_per_s"] / r["core_interpreted_events_per_s"], 3)
    if "restart" not in skip:
        r.update(restart(run, args.restart_contacts, args.restart_agents))

    if "memory" not in skip:
        open_n = 10_000 if args.quick else 100_000
        for compiled, key in (
            (False, "core_bytes_per_open_contact"),
            (True, "core_compiled_bytes_per_open_contact"),
        ):  # each in a fresh process, as the core rates
            r[key] = round(compiled_core.run("heap", open_n, compiled=compiled)["bytes_per_open_contact"])
        r["customer_record_bytes"] = round(customers.bytes_per_customer(open_n))
        r["customer_abandon_record_bytes"] = round(customers.bytes_per_customer(open_n, abandoned=True))
        scrape, samples, per_contact = scrape_and_memory(run, 1000, open_n)
        r["scrape_s"], r["scrape_samples"], r["bytes_per_open_contact"] = (
            round(scrape, 4),
            samples,
            round(per_contact),
        )

    if "pollers" not in skip:
        r.update(pollers.measure(agents=5000, pollers=20, rounds=3 if args.quick else 5))

    rows = [
        ("raw aiokafka getmany + orjson", "raw_events_per_s", "events/s"),
        ("pure core, in-process", "core_events_per_s", "events/s"),
        ("  the same with customer features (a key)", "core_customers_events_per_s", "events/s"),
        ("  their cost", "customer_features_cost", "of the rate"),
        *prices.ROWS,
        ("pure core, interpreted", "core_interpreted_events_per_s", "events/s"),
        ("pure core, compiled (mypyc)", "core_compiled_events_per_s", "events/s"),
        ("  interpreted, the worker's collector", "core_interpreted_worker_gc_events_per_s", "events/s"),
        ("  compiled, the worker's collector", "core_compiled_worker_gc_events_per_s", "events/s"),
        ("ccmon worker: all N in its state", "events_per_s", "events/s"),
        ("  the same, interpreted core", "events_per_s_interpreted", "events/s"),
        ("  the same, 3 brokers, repl. 3, acks=all", "replicated_events_per_s", "events/s"),
        ("  3 brokers / 1 broker", "replicated_ratio", ""),
        ("ccmon worker: stage 1 counted N", "stage1_events_per_s", "events/s"),
        ("ratio worker / raw", "ratio_to_raw", ""),
        ("ratio worker / interpreted core", "ratio_to_core", ""),
        ("naive faust agent", "naive_faust_events_per_s", "events/s"),
        ("quix-streams peer (simpler job)", "peer_quix_events_per_s", "events/s"),
        *(
            (f"ccmon, {k} workers, one group", f"workers_{k}_events_per_s", "events/s")
            for k in scales
            if k > 1
        ),
        ("latency: the worker's capacity", "latency_capacity_events_per_s", "events/s"),
        *(
            row
            for pct, goal in ((round(f * 100), goal) for f, goal in LATENCY_GOALS)
            for row in (
                (f"latency p50 at {pct} % capacity", f"p50_latency_c{pct}_s", "s"),
                (f"latency p99 at {pct} % (goal {goal:g} s)", f"p99_latency_c{pct}_s", "s"),
            )
        ),
        ("latency p50 at 2000/s", "p50_latency_s", "s"),
        ("latency p99 at 2000/s", "p99_latency_s", "s"),
        ("latency p50 at 10000/s", "p50_latency_10k_s", "s"),
        ("latency p99 at 10000/s", "p99_latency_10k_s", "s"),
        ("restart, SIGTERM: ready, same KPIs", "restart_sigterm_s", "s"),
        ("restart, SIGKILL: ready, same KPIs", "restart_sigkill_s", "s"),
        ("restart: changelog read after SIGTERM", "restart_sigterm_tail_messages", "messages"),
        ("restart: changelog read after SIGKILL", "restart_sigkill_tail_messages", "messages"),
        ("restart: whole changelog", "restart_changelog_messages", "messages"),
        ("restart: changelog on disk", "restart_changelog_bytes", "bytes"),
        ("restart: busy day's events", "restart_events", "events"),
        ("/metrics, 1000 queues x 2 ch", "scrape_s", "s"),
        ("RSS per open contact", "bytes_per_open_contact", "bytes"),
        ("pure core heap per open contact", "core_bytes_per_open_contact", "bytes"),
        ("  the same, compiled core", "core_compiled_bytes_per_open_contact", "bytes"),
        ("customer stage heap per customer", "customer_record_bytes", "bytes"),
        ("  the same, an abandon to call back", "customer_abandon_record_bytes", "bytes"),
        ("/api/agents render, 5000 agents", "agents_render_ms", "ms"),
        ("loop stall, 20 pollers: 2-byte floor", "agents_stall_floor_ms", "ms"),
        ("loop stall, 20 pollers: per poll", "agents_stall_per_poll_ms", "ms"),
        ("loop stall, 20 pollers: shared", "agents_stall_shared_ms", "ms"),
        ("  shared / per poll", "agents_stall_ratio", ""),
    ]
    print(f"{'measure (' + str(n) + ' events)':<34}{'value':>14}  unit")
    for label, key, unit in rows:
        if key not in r:
            continue
        value = r[key]
        print(
            f"{label:<34}{value:>14,}  {unit}"
            if isinstance(value, int)
            else f"{label:<34}{value:>14}  {unit}"
        )
    Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    print(" ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
