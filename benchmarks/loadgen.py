"""The latency phases' load generator, in a process of its own at a low CPU priority.

    python -m benchmarks.loadgen RATE SECONDS WARM_S     (the phase's CCMON_* settings in the env)

Sends ``workload.mix`` (seed 2) at RATE events/s for WARM_S + SECONDS (``workload.paced``) and
prints one JSON line: how many events and offers it sent, the send time of each offer, how many
of them were sent during the warm-up, and the rate it achieved.

Why a process, and why niced (issue 27): a live contact center's producers run elsewhere; on the
bench's 2 cores they share the machine with the worker, and in the worker's process-time budget
at 8,000 /s the generator took 0.45-0.65 of a core beside the worker's 0.53-0.74 and the broker's
0.5, so the phases at half of capacity measured a worker short of CPU, not its pipeline. At
``NICE`` the scheduler gives the worker (and the broker) the CPU first, and the generator what is
left; the latency is measured from each event's actual send time (an event sent late counts
from when it left), and the rate achieved is reported beside the phase, so a generator that fell
behind shows. The scraper stays in the bench's process, at its normal priority: a scrape that
waited would make the worker look slower.
"""

from __future__ import annotations

import asyncio
import os
import sys

import orjson

from benchmarks import workload
from streams.config import load

#: the generator's niceness (0-19; CFS gives a nice-10 process ~1/10 of a nice-0 one's CPU when
#: both want it); CCMON_BENCH_LOADGEN_NICE=0 runs it beside the worker as an equal (the pair in
#: docs/performance.md)
NICE = int(os.environ.get("CCMON_BENCH_LOADGEN_NICE", "10"))
SEED = 2


def main() -> None:
    rate, seconds, warm_s = (float(a) for a in sys.argv[1:4])
    os.nice(NICE)
    events = workload.mix(int(rate * (warm_s + seconds)), seed=SEED)
    offers = [workload.counts_offered(v) for _, _, v in events]
    steady_from = int(rate * warm_s)  # the first event of the measured part
    sent: list[float] = []
    asyncio.run(workload.produce(load(), events, rate=rate, sent=sent.append))
    offer_times = [t for t, is_offer in zip(sent, offers, strict=True) if is_offer]
    result = {
        "events": len(events),
        "offers": offer_times,
        "warm_offers": sum(offers[:steady_from]),
        "sent_per_s": (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 and sent[-1] > sent[0] else 0.0,
    }
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
