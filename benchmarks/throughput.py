"""Throughput on the real local Kafka: ccmon worker vs a plain aiokafka consumer, same events.

    python -m benchmarks.throughput [--events N]

Produces N simulated events (with ~3 % bad input) to fresh topics, then measures, in one run:
- raw: a plain aiokafka consumer (getmany, large batches) reading and orjson-decoding them all;
- core: the pure two-stage core in-process (no Kafka), the arithmetic's own ceiling;
- worker: a cold ``ccmon worker`` from its first consumed event until /metrics accounts for all.
Prints a table and a last line of key=value pairs; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from producers.simulate import Simulator
from streams.config import load
from streams.core.intake import Record
from streams.core.local import LocalPipeline
from streams.kafka_local import LocalKafka
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


def make_events(n: int, seed: int = 1) -> list[tuple[str, bytes, bytes]]:
    """(short topic, key, value) of a realistic mix: simulated lifecycles, agents, surveys, bad input."""
    from producers.scenario import Scenario
    start = time.time() - 6 * 3600
    sim = Simulator(seed, start, Scenario.default().scaled(rate=8, agents=8))
    rng = random.Random(seed)
    out: list[tuple[str, bytes, bytes]] = []
    t = start
    while len(out) < n:
        t += 60
        for topic, key, event in sim.advance(t):
            if rng.random() < 0.03:
                bad = rng.choice([b"{not json", b"\xff\xfe", orjson.dumps({**event, "type": "bogus"}),
                                  orjson.dumps({k: v for k, v in event.items() if k != "ts"})])
                out.append((topic, key.encode(), bad))
            out.append((topic, key.encode(), orjson.dumps(event)))
    return out[:n]


async def produce(s, events) -> None:
    topics = {"calls": s.calls_topic, "chats": s.chats_topic, "agents": s.agents_topic}
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, linger_ms=20, max_batch_size=512 * 1024,
                                acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value in events:
            await producer.send(topics[topic], value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def raw_consume(s, n: int) -> float:
    consumer = AIOKafkaConsumer(s.calls_topic, s.chats_topic, s.agents_topic, bootstrap_servers=s.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
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
    return n / (time.perf_counter() - started)


def core_rate(s, events) -> float:
    names = {"calls": s.calls_topic, "chats": s.chats_topic, "agents": s.agents_topic}
    offsets: dict = {}
    records = []
    for topic, key, value in events:
        part = zlib.crc32(key) % s.partitions
        off = offsets[(topic, part)] = offsets.get((topic, part), -1) + 1
        records.append(Record(names[topic], part, off, key, value))
    p = LocalPipeline(s)
    started = time.perf_counter()
    now = time.time()
    for i in range(0, len(records), s.batch_size):
        p.feed(records[i:i + s.batch_size], now=now)
    return len(records) / (time.perf_counter() - started)


def scrape_total(port: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "ccmon_events_total")


def worker_rate(s, n: int, port: int, env: dict) -> tuple[float, float]:
    log = Path(os.environ.get("CCMON_DATA_DIR", "/tmp")) / "bench-worker.log"
    proc = subprocess.Popen([sys.executable, "-m", "streams", "worker", "--web-port", str(port)], env=env, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        first = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited with {proc.returncode}; see {log}")
            try:
                total = scrape_total(port)
            except OSError:
                total = 0
            if total > 0 and first is None:
                first = time.perf_counter()
            if total >= n:
                end = time.perf_counter()
                return n / (end - first), end - first
            time.sleep(0.05)
        raise SystemExit(f"worker did not account for every event in 900 s; see {log}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--kafka-port", type=int, default=int(os.environ.get("CCMON_BENCH_KAFKA_PORT", "39092")))
    ap.add_argument("--json", default="benchmarks/results.json")
    args = ap.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    kafka = LocalKafka(port=args.kafka_port, data_dir=Path(os.environ.get("CCMON_DATA_DIR", "/tmp")) / "bench-kafka")
    print(kafka.start(), file=sys.stderr)
    env = {**os.environ, "CCMON_BROKER": f"kafka://{kafka.address}", "CCMON_APP_ID": prefix,
           "CCMON_CALLS_TOPIC": f"{prefix}.calls", "CCMON_CHATS_TOPIC": f"{prefix}.chats",
           "CCMON_AGENTS_TOPIC": f"{prefix}.agents", "CCMON_DEAD_LETTER_TOPIC": f"{prefix}.dead",
           "CCMON_FACTS_TOPIC": f"{prefix}.facts", "CCMON_LOG_LEVEL": "warning"}
    s = load(env)
    print(f"generating {args.events} events...", file=sys.stderr)
    events = make_events(args.events)
    asyncio.run(ensure_topics(s))
    t0 = time.perf_counter()
    asyncio.run(produce(s, events))
    print(f"produced in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    raw = asyncio.run(raw_consume(s, args.events))
    print(f"raw consumer: {raw:,.0f} events/s", file=sys.stderr)
    core = core_rate(s, events)
    print(f"pure core: {core:,.0f} events/s", file=sys.stderr)
    worker, elapsed = worker_rate(s, args.events, 16999, env)
    results = {"events": args.events, "raw_events_per_s": round(raw), "core_events_per_s": round(core),
               "events_per_s": round(worker), "worker_seconds": round(elapsed, 2),
               "ratio_to_raw": round(worker / raw, 3)}
    print(f"{'measure':<28}{'events/s':>12}")
    print(f"{'raw aiokafka + orjson':<28}{raw:>12,.0f}")
    print(f"{'pure core (in-process)':<28}{core:>12,.0f}")
    print(f"{'ccmon worker (cold start)':<28}{worker:>12,.0f}")
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(" ".join(f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
