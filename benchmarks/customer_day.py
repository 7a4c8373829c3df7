"""A simulated day of returning customers through the pure core (issue 24's figures).

    python -m benchmarks.customer_day [--hours 24] [--seed 1]

In-process, no Kafka: the default scenario (``producers/scenarios/default.toml``, its
``[customers]`` section) from the fixed midnight of 2026-01-05 UTC, so the same figures at any
hour, through streams/dev/local_pipeline.py with a customer key and the default windows (R 24 h,
W 60 min), then every customer KPI summed over the queues: repeat rate, recovery, operational
FCR, resolution time, customers at risk, and the customer stage's records.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib

from producers.scenario import Scenario
from producers.simulate import Simulator
from streams.config import load
from streams.dev.local_pipeline import LocalPipeline

START = 1_767_571_200.0  #: 2026-01-05 00:00 UTC
KEY = b"customer-day-benchmark-key-0123"
TOPICS = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}


def run(hours: float, seed: int) -> dict[str, float]:
    p = LocalPipeline(load({}, customer_key=KEY, partitions=4))
    sim = Simulator(seed, START, Scenario.default())
    end = START + hours * 3600
    t, events, began = START, 0, time.monotonic()
    while t < end:  # an hour at a time: the clock of the batches follows the day
        t = min(end, t + 3600)
        rows = sim.advance(t)
        records = []
        for kind, key, event in rows:
            records.append(p.record(TOPICS[kind], event, key=key, partition=zlib.crc32(key.encode()) % 4))
        p.feed(records, now=t)
        p.sweep(t)
        events += len(records)
        print(f"  {(t - START) / 3600:4.0f} h simulated, {events:,} events", file=sys.stderr)
    views = [p.store.view(q, ch, end) for q, ch in p.store.series()]
    offered = sum(v.counters["offered"] for v in views)
    repeats = sum(sum(v.repeat.values()) for v in views)
    recovered, lost = sum(v.recovered for v in views), sum(v.lost for v in views)
    decided, resolved = sum(v.fcr_decided for v in views), sum(v.fcr_resolved for v in views)
    # a histogram is its per-bucket counts, then its sum
    res_n = sum(sum(v.resolution_hist[:-1]) for v in views if v.resolution_hist)
    res_s = sum(v.resolution_hist[-1] for v in views if v.resolution_hist)
    return {
        "events": events,
        "seconds": round(time.monotonic() - began, 1),
        "offered": offered,
        "repeats": repeats,
        "repeat_ratio": round(repeats / offered, 4) if offered else 0.0,
        "recovered": recovered,
        "lost": lost,
        "recovery_ratio": round(recovered / (recovered + lost), 4) if recovered + lost else 0.0,
        "unrecovered_now": sum(v.unrecovered or 0 for v in views),
        "fcr_decided": decided,
        "fcr_resolved": resolved,
        "operational_fcr": round(resolved / decided, 4) if decided else 0.0,
        "resolutions": res_n,
        "resolution_mean_s": round(res_s / res_n, 1) if res_n else 0.0,
        "at_risk": sum(p.store.at_risk(q) for q in {v.queue for v in views}),
        "customer_records": sum(1 for k in p.customers if k[0] == "u"),
        "applied_late": p.customer_stage.applied_late,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for name, value in run(args.hours, args.seed).items():
        print(f"{name}: {value:,}" if isinstance(value, int) else f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
