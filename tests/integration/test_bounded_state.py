"""Bounded state over time: with retention and lateness shortened, twelve simulated hours of a
contact center go through one worker in four parts; the state it holds and its RSS level off
instead of growing with the number of contacts ever seen."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.core.queues import AHEAD_LOOKBACK_S, FOLD_AFTER_S
from tests.integration.support import Env, Worker, exported, record_flat, total_events

pytestmark = pytest.mark.integration

PARTS = 4
RETENTION_S = 120


class Expectation:
    """What the retention rule can leave in the lifecycle table after the events sent so far,
    computed from the recording: a contact is dropped once it was last seen more than RETENTION_S
    before its partition's watermark (the latest event time there). The bounds are computed from
    the recording, never fixed numbers (its traffic is flat over the day, so the same at any hour)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = list(range(partitions))
        self.partitioner = DefaultPartitioner()
        self.first: dict[tuple[str, str], tuple[int, float]] = {}
        self.last: dict[tuple[str, str], float] = {}
        self.agents: set[str] = set()
        #: (topic, partition, agent id) of every event naming an agent: the agent cap's registry
        #: (``r|`` records) keeps one per triple for the UTC day, whatever the retention
        self.agent_sightings: set[tuple[str, int, str]] = set()
        self.marks: dict[tuple[str, int], float] = defaultdict(float)

    def add(self, lines: list[bytes]) -> None:
        for line in lines:
            rec = orjson.loads(line)
            value, topic = rec["value"], rec["topic"]
            p = self.partitioner(rec["key"].encode(), self.partitions, self.partitions)
            ts = value["ts"] / 1000
            self.marks[topic, p] = max(self.marks[topic, p], ts)
            if value.get("agent_id"):
                self.agent_sightings.add((topic, p, value["agent_id"]))
            if "contact_id" in value:
                key = (topic, value["contact_id"])
                self.first.setdefault(key, (p, ts))
                self.last[key] = max(ts, self.last.get(key, 0.0))
            else:
                self.agents.add(value["agent_id"])

    def least(self) -> int:
        """Contacts offered within RETENTION_S of their partition's watermark: never expirable yet."""
        return sum(1 for (topic, _), (p, ts) in self.first.items() if ts + RETENTION_S > self.marks[topic, p])

    def most(self) -> int:
        """Contacts with any event within 2 × RETENTION_S of their partition's latest event time,
        every agent, a watermark per topic partition, a known-queues record per partition, and the
        agent cap's registry: a record per agent and input partition it was named on (kept for the
        day: it is bounded by the cap, not by retention).
        The worker's watermark is the latest *accepted* event time: rejected events (here mostly
        surveys for contacts retention has dropped) do not move it, so it can trail the latest
        event time (by up to 69 s in an offline run of this recording); hence the second period."""
        live = sum(
            1
            for (topic, cid), ts in self.last.items()
            if ts + 2 * RETENTION_S >= self.marks[topic, self.first[topic, cid][0]]
        )
        return live + len(self.agents) + len(self.marks) + len(self.partitions) + len(self.agent_sightings)


def test_state_and_memory_level_off_over_a_long_run(env: Env, workers: list[Worker], tmp_path: Path):
    recording = tmp_path / "day.jsonl"
    lines = record_flat(env, recording, 12, 12 * 3600, 3, "--staff", "3")
    worker = Worker(env, CCMON_RETENTION_S=str(RETENTION_S), CCMON_LATENESS_S="60", CCMON_ACW_TIMEOUT_S="120")
    workers.append(worker)
    size = len(lines) // PARTS
    figures = []
    sent = 0
    expect = Expectation(int(env.vars()["CCMON_PARTITIONS"]))
    for i in range(PARTS):
        part = tmp_path / f"part{i}.jsonl"
        chunk = lines[i * size : (i + 1) * size if i < PARTS - 1 else len(lines)]
        part.write_bytes(b"".join(chunk))
        done = env.ccmon("replay", str(part), "--quiet", timeout=300)
        assert done.returncode == 0, done.stderr
        sent += len(chunk)
        expect.add(chunk)

        def all_counted(m: dict, sent: int = sent) -> bool:  # this part's total, bound now
            return total_events(m) == sent

        m = worker.wait_settled(all_counted, timeout=300, what=f"part {i + 1}")
        # the sweep (every second here) drops what retention allows; let it run after the last event
        m = worker.wait_settled(lambda m: True, timeout=30, quiet_s=2.5, what="a sweep")
        offered = sum(v for (n, _), v in m.items() if n == "ccmon_contacts_offered_total")
        figures.append(
            (
                sent,
                offered,
                exported(m, "ccmon_state_records", table="lifecycle"),
                exported(m, "ccmon_state_records", table="queues"),
                worker.rss(),
                expect.least(),
                expect.most(),
                len(expect.first),
            )
        )
        series = {k[1] for k in m if k[0] == "ccmon_contacts_offered_total"}
        queues = {dict(k[1])["queue"] for k in m if k[0] == "ccmon_agents"}
    report = "; ".join(
        f"after {s} events ({o:.0f} contacts offered, {ever} ever seen): {lc:.0f} lifecycle "
        f"records (retention leaves {least}–{most}) + {q:.0f} queue records, RSS {r / 2**20:.0f} MiB"
        for s, o, lc, q, r, least, most, ever in figures
    )
    print(report)
    (_, o1, *_), (_, o4, _, q4, r4, *_) = figures[0], figures[-1]
    assert o4 > 3 * o1  # four times the contacts...
    # ...not four times the contact state: what retention leaves, the traffic of the last minutes
    # (computed from the recording), never the contacts ever seen
    for _, _, lc, _, _, least, most, ever in figures:
        assert least <= lc <= most < ever / 3, report
    # queue state: per series the buckets within the widest window's reach (1 h + lateness + future
    # tolerance + one bucket, by the wall clock), two days, totals and waiting; the ended waits the
    # EWT error grades (``e|`` buckets: folded FOLD_AFTER_S after their offered time, kept for the
    # look-back and the 5 minutes before it, up to the future tolerance ahead) and its folded
    # grades (``k|``); the service level by interval of today and yesterday (``i|``, 30-min
    # intervals, a 25-hour day at most); an agents record per queue. All by the wall clock, none
    # by the contacts ever seen.
    horizon_buckets = (3600 + 60 + 300 + 10) // 10 + 1
    ended_buckets = (FOLD_AFTER_S + AHEAD_LOOKBACK_S + 300 + 10 + 300) // 10 + 2
    intervals = 2 * 25 * 2
    per_series = horizon_buckets + ended_buckets + 1 + intervals + 2 + 2
    assert q4 <= len(series) * per_series + len(queues), report
    assert r4 - figures[1][4] < 40 * 2**20, report  # and memory levels off after the first parts
