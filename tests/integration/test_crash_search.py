"""A crash test that searches rather than samples: many scenarios, each a consumer group of its
own on the same recorded input, whose workers SIGKILL themselves at a chosen point of their work
(``CCMON_TEST_KILL_AT``, streams/killpoints.py): between a batch's facts send and its state
write, with state queued but not acknowledged, before and after an offset commit, in stage 2,
after a sweep, during the rebalance and recovery of a start, right after it. Some scenarios keep
a second worker running beside the victims, so partitions move between workers as they die and
come back. After the kills a clean worker catches up, and the group's series must equal those of
a reference worker that was never interrupted: every counter, histogram bucket, gauge, for every
queue and every agent, exported by exactly one worker.

The workers run with per-agent series on (``CCMON_AGENT_METRICS=true``; the worker's default is
off), so the agent records (table ``ccmon-agents``) are compared too; set
``CCMON_CRASH_SEARCH_AGENT_METRICS=false`` to compare the queues alone. The per-agent differences
the search once reported (handle times and states after a kill with a companion worker beside
the victims) were the loss of messages handed over at the end of a recovery, fixed in
streams/faust_ext/consumer.py: re-run on the consumer before that fix, the scenario that ended
unequal differed in queue series as well (570 series, among them 200 wait and 87 handle-time
buckets), and the report lists differing series sorted by name, so ``ccmon_agent_*`` come first.
The gauge of customers at risk was once left out (issue 24): it ended one or two customers apart
on a few queues in 4 of 6 scenarios, because a customer's record remembered the queue of their
latest contact beyond that contact's window, and a late detractor survey found it or not as the
record had lived on (held facts) or gone; the queue now comes from windowed items only
(streams/core/customers.py, ``_latest_queue``), and the gauge is compared like every series.

The recording (tests/integration/recordings.py) has the mix of issue 10: duplicates, events
arriving behind later ones, transfers, holds, missing wrap-ups, surveys hours late, agents and
200 hostile inputs; and (issue 21) 100 events whose times come from the whole range the formats
accept, years 1 to 9999 at offsets from UTC-12 to UTC+14 (half of them an agent's first state,
followed later by a current one), in a contact center of UTC+14, UTC-12 or UTC by the seed.
The suite runs ``CCMON_CRASH_SEARCH_SCENARIOS`` scenarios (default 6, about
2 minutes on 2 shared cores); set it higher, and ``CCMON_CRASH_SEARCH_SEED``, to search longer
(``CCMON_CRASH_SEARCH_SCENARIOS=12`` with the default seed and seeds 1-4: 60 of 60
scenarios equal with per-agent series, 24 Nov 2026).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.core.intake import partition_for_queue
from streams.killpoints import POINTS
from tests.integration.recordings import mixed
from tests.integration.support import (
    PARTITIONS,
    ROOT,
    Env,
    Worker,
    caught_up,
    check,
    reference_worker,
    state_series,
    stream_lags,
    summed,
    total_events,
)
from tests.unit.helpers import ZONES

pytestmark = pytest.mark.integration

SCENARIOS = int(os.environ.get("CCMON_CRASH_SEARCH_SCENARIOS", "6"))
SEED = int(os.environ.get("CCMON_CRASH_SEARCH_SEED", "20261123"))
KILLS = 3  #: victims per scenario
PARALLEL = 2  #: scenarios at a time (each is a group of its own)
#: small batches and frequent commits: many distinct places for a kill in one pass of the input
WORKER = {
    # the contact center's time zone, at an end of the offsets (UTC+14, UTC-12) or UTC, by seed
    # (the default seed's: UTC+14)
    "CCMON_TIMEZONE": ZONES[(SEED + 1) % len(ZONES)],
    "CCMON_SESSION_TIMEOUT_S": "6",
    "CCMON_BATCH_SIZE": "200",
    "CCMON_AGENT_METRICS": os.environ.get("CCMON_CRASH_SEARCH_AGENT_METRICS", "true"),
    "CCMON_LOG_LEVEL": "info",
    # the customer stage (issue 24), in windows the hour of traffic decides: repeats, recoveries,
    # losses; its key file is written by the test (customer_key)
    "CCMON_REPEAT_WINDOW_S": "1200",
    "CCMON_RECOVERY_WINDOW_S": "600",
    # the customer clock waits for every partition, never idle: a backlog replayed in bulk leaves
    # partitions far apart, and the recording's events from any time (``edges``, accepted up to
    # 100 years back) move some partitions' watermarks months ahead of the hour of traffic
    # (docs/configuration.md)
    "CCMON_CUSTOMER_IDLE_S": str(100 * 365 * 86400),
}


def customer_key(env: Env) -> dict[str, str]:
    """The customer key every worker of the search shares (one file in the deployment's tmp)."""
    path = env.tmp / "customer.key"
    if not path.exists():
        path.write_bytes(b"crash-search-customer-key-0123456789\n")
    return {"CCMON_CUSTOMER_KEY_FILE": str(path)}


#: only these scenario numbers (e.g. "0,1"), to re-run a failure of a longer search
ONLY = {int(n) for n in os.environ.get("CCMON_CRASH_SEARCH_ONLY", "").split(",") if n.strip()}
#: where the worker logs of a scenario that ends unequal are kept (pytest's temporary directories
#: are rotated away by later runs)
KEEP = ROOT / "artifacts" / "crash-search"
#: how many times a point may be passed before the kill: a pass of the input is ~75 stage-1
#: batches, fewer stage-2 batches and commits, a few 1-s sweeps; recovery and its end come once
#: per start. Each victim should die early enough that the later ones still have work.
REACH = {
    "lifecycle-batch": 10,
    "facts-acked": 10,
    "state-queued": 10,
    "queues-batch": 4,
    "sweep": 2,
    "commit": 6,
    "committed": 6,
    "assigned": 1,
    "recovered": 1,
}
assert set(REACH) == set(POINTS)


@dataclass
class Scenario:
    number: int
    kills: list[str]
    companion: bool  #: a worker without a kill point runs beside the victims all along
    outcomes: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)  #: of its workers, in the order they started


def run_scenario(env: Env, sc: Scenario, ref: dict, started: list[Worker]) -> str | None:
    """Run one scenario; None when the group ends equal to the reference, else what differs."""
    mine: list[Worker] = []
    result: str | None = "failed"
    try:
        result = _scenario(env, sc, ref, mine)
        return result
    finally:
        started.extend(mine)  # the fixture kills them should this fail half-way
        for w in mine:  # idle workers of finished scenarios would slow the next ones
            w.stop(signal.SIGKILL)
        if result is not None:  # keep the logs where the next test run does not remove them
            keep = KEEP / f"{env.prefix}-s{sc.number}"
            keep.mkdir(parents=True, exist_ok=True)
            for i, w in enumerate(mine):
                shutil.copy(w.log, keep / f"{i}-{w.log.name}")
            sc.logs = sorted(keep.iterdir())


def _scenario(env: Env, sc: Scenario, ref: dict, started: list[Worker]) -> str | None:
    group = {
        "CCMON_APP_ID": f"{env.prefix}-s{sc.number}",
        "CCMON_FACTS_TOPIC": f"{env.prefix}.s{sc.number}-facts",
        **WORKER,
        **customer_key(env),
    }
    live: list[Worker] = []
    if sc.companion:  # starts with the first victim: they share the input from the beginning
        live.append(Worker.launched(env, **group))
        started.append(live[0])
    for spec in sc.kills:
        victim = Worker.launched(env, CCMON_TEST_KILL_AT=spec, **group)
        started.append(victim)
        deadline = time.monotonic() + 120
        while victim.proc.poll() is None and time.monotonic() < deadline:
            try:
                if caught_up(victim.scrape()):  # the point was not reached before the input ran out
                    break
            except OSError:  # not serving yet
                pass
            time.sleep(0.2)
        code = victim.proc.poll()
        if code is None:
            victim.stop(signal.SIGKILL)
            sc.outcomes.append(f"{spec}: not reached, killed after catching up")
        else:
            assert code == -signal.SIGKILL, f"{spec}: exited {code}:\n{victim.log.read_text()[-3000:]}"
            sc.outcomes.append(f"{spec}: killed there")
    final = Worker(env, **group)
    started.append(final)
    live.append(final)
    deadline = time.monotonic() + 240
    while True:
        scrapes = [w.scrape() for w in live]
        # a worker given only partitions read to the end before it joined has read nothing, and
        # its consumer reports no lag for them: no lag reported counts as none here (the series
        # must still equal the reference's)
        if any(sum(stream_lags(m).values()) for m in scrapes):
            problem: str | None = f"not caught up: stream lags {[stream_lags(m) for m in scrapes]}"
        elif (problem := check(live, ref)) is None:
            return None
        if time.monotonic() > deadline:
            return f"{problem}\n  {where_they_differ(live, ref)}"
        time.sleep(0.5)


def where_they_differ(workers: list[Worker], ref: dict) -> str:
    """Which facts partitions and families the differences are on (a lost partition's worth of
    state, or scattered decisions?)."""
    total = summed([w.scrape() for w in workers])
    by_partition: Counter = Counter()
    by_family: Counter = Counter()
    for key in set(total) | set(ref):
        if total.get(key) != ref.get(key):
            labels = dict(key[1])
            subject = labels.get("queue", labels.get("agent"))
            by_partition[partition_for_queue(subject, PARTITIONS) if subject is not None else None] += 1
            by_family[key[0]] += 1
    families = dict(by_family.most_common(8))
    return f"differing series by facts partition {dict(by_partition)}, by family {families}"


def test_kills_at_every_point_of_the_work_change_no_series(env: Env, workers: list[Worker], tmp_path: Path):
    rng = random.Random(SEED)
    recording = tmp_path / "search.jsonl"
    kinds = mixed(recording, env.topics, seed=SEED % 1000, minutes=60, rate=2, edges=100, customers=True)
    assert kinds["late_arrivals"] > 200 and kinds["duplicates"] > 100 and kinds["transferred"] > 50
    assert env.ccmon("replay", str(recording), "--quiet", timeout=300).returncode == 0
    reference = reference_worker(env, **WORKER, **customer_key(env))
    workers.append(reference)
    ref = state_series(
        reference.wait_settled(lambda m: total_events(m) == kinds["lines"], timeout=300, what="the reference")
    )
    assert len(ref) > 300
    # the customer stage's state is part of what must come out equal
    customer = {k[0] for k in ref if k[0].startswith(("ccmon_contacts_repeat", "ccmon_abandons_"))}
    assert {
        "ccmon_contacts_repeat_total",
        "ccmon_abandons_recovered_total",
        "ccmon_abandons_lost_total",
    } <= customer
    assert sum(v for k, v in ref.items() if k[0] == "ccmon_abandons_lost_total") > 0

    scenarios = []
    for number in range(SCENARIOS):
        points = rng.sample(POINTS, KILLS)
        scenarios.append(
            Scenario(number, [f"{p}:{rng.randint(1, REACH[p])}" for p in points], companion=number % 3 == 2)
        )
    if ONLY:
        scenarios = [sc for sc in scenarios if sc.number in ONLY]
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda sc: run_scenario(env, sc, ref, workers), scenarios))
    report = "\n".join(
        f"scenario {sc.number} ({'with a companion, ' if sc.companion else ''}{'; '.join(sc.outcomes)}): "
        f"{result or 'every series equal'}" + "".join(f"\n  worker log kept: {log}" for log in sc.logs)
        for sc, result in zip(scenarios, results, strict=True)
    )
    print(f"{kinds['lines']} events ({dict(kinds)})\n{report}")
    killed = sum(o.endswith("killed there") for sc in scenarios for o in sc.outcomes)
    assert killed >= len(scenarios), f"too few kills landed:\n{report}"
    assert all(r is None for r in results), report
