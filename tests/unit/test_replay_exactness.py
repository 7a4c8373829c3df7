"""At-least-once replays give exactly the uninterrupted result (docs/architecture.md).

The worker sends a batch's facts, waits for the broker, then writes the batch's state. Kafka
keeps each changelog partition in order, so a crash loses a suffix of each partition's writes of
that batch (never facts of state that persisted); the batch is then consumed again. This replays
that, at random points and cuts, on simulated traffic.
"""

import copy
import random
import zlib

import orjson
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from producers.scenario import Scenario
from producers.simulate import Simulator
from streams.core.intake import Intake, Record
from streams.core.local import LocalPipeline
from tests.unit.helpers import settings, with_later_spec_events

TOPICS = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}
START = 1_795_420_000.0


def traffic(seed: int, minutes: int = 30) -> list[Record]:
    scenario = Scenario.default().scaled(agents=0.6).replace(missing_wrapup_probability=0.3)
    sim = Simulator(seed, START, scenario)
    rng = random.Random(seed)
    rows = with_later_spec_events(sim.advance(START + minutes * 60), rng)
    offsets: dict = {}
    records = []
    for topic, key, event in rows:
        for _ in range(2 if rng.random() < 0.03 else 1):  # a few producer retries: duplicates
            t = TOPICS[topic]
            part = zlib.crc32(key.encode()) % 3
            off = offsets.get((t, part), -1) + 1
            offsets[(t, part)] = off
            records.append(Record(t, part, off, key.encode(), orjson.dumps(event)))
    return records


def views(p: LocalPipeline, now: float) -> dict:
    out = {}
    for q, ch in p.store.series():
        v = p.store.view(q, ch, now)
        out[(q, ch)] = (v.counters, v.dequeued, v.missed, v.wait_hist, v.handle_hist, v.waiting, v.windows)
    out["agents"] = dict(p.store.agents())
    out["agent view"] = p.agent_store.rows(now)  # per agent: state, contacts in hand, today, totals
    return out


def run(records, batches, now, crash=None, sweeps=()):
    p = LocalPipeline(settings(partitions=4))
    for i, (a, b) in enumerate(batches):
        batch = records[a:b]
        before = copy.deepcopy(p.lifecycle)
        out = p.feed(batch, now=now)
        if i in sweeps:
            p.sweep(now)
        if crash is not None and i in crash:
            rng = random.Random(i)
            per_partition: dict[int, list[str]] = {}
            for key, (partition, _) in out.writes.items():  # in the order they are produced
                per_partition.setdefault(partition, []).append(key)
            for keys in per_partition.values():  # lose a random suffix of each changelog partition
                for key in keys[rng.randint(0, len(keys)):]:
                    if key in before:
                        p.lifecycle[key] = copy.deepcopy(before[key])
                    else:
                        p.lifecycle.pop(key, None)
            p.intake = Intake(p.lifecycle, p.settings)  # a restarted worker rebuilds its index
            p.feed(batch, now=now)  # the batch after the last commit is consumed again
    p.sweep(now)
    return p


RECORDS = traffic(7)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replayed_batches_after_crashes_give_the_uninterrupted_result(data):
    n = len(RECORDS)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), min_size=3, max_size=12)))
    bounds = list(zip([0, *cuts], [*cuts, n]))
    crashes = data.draw(st.sets(st.integers(0, len(bounds) - 1), min_size=1, max_size=4))
    sweeps = data.draw(st.sets(st.integers(0, len(bounds) - 1), max_size=6))
    now = START + 30 * 60 + 5
    clean = run(RECORDS, [(0, n)], now)
    crashed = run(RECORDS, bounds, now, crash=crashes, sweeps=sweeps)
    assert views(crashed, now) == views(clean, now)


def test_traffic_exercises_timeouts_transfers_duplicates_and_the_later_spec_events():
    from streams.core import kpis
    now = START + 30 * 60 + 5
    p = run(RECORDS, [(0, len(RECORDS))], now)
    assert p.dead == []
    dup = sum(v for (t, r), v in p.results.items() if r == "duplicate")
    all_views = [p.store.view(q, ch, now) for q, ch in p.store.series()]
    handled = sum(v.counters["handled"] for v in all_views)
    transferred = sum(v.counters["transferred_out"] for v in all_views)
    assert dup > 10 and handled > 50 and transferred > 0
    dequeued = sum(n for v in all_views for n in v.dequeued.values())
    other = sum(v.dequeued["other"] for v in all_views)
    missed = sum(v.missed for v in all_views)
    ces = sum(v.windows["today"][kpis.CES_N] for v in all_views)
    assert dequeued > 5 and 0 < other < dequeued and missed > 20 and ces > 5
    rows = p.agent_store.rows(now)
    assert len(rows) > 10
    assert sum(r.handled_total for r in rows) == handled  # every handled segment was answered by an agent
    assert sum(r.missed_total for r in rows) == missed
    assert any(r.contacts for r in rows) and all(r.state is not None for r in rows if r.handled_total)
    assert len({s for r in rows for s, sec in r.state_s_today.items() if sec > 0}) >= 3


def test_offline_agents_expire_in_stage_two():
    p = LocalPipeline(settings(retention_s=3600))
    recs = [p.record("cc.agents", {"event_id": "1", "type": "state", "agent_id": "a", "state": "offline",
                                   "queues": ["q"], "ts": int(START * 1000)}),
            p.record("cc.agents", {"event_id": "2", "type": "state", "agent_id": "b", "state": "busy",
                                   "queues": ["q"], "ts": int(START * 1000)})]
    p.feed(recs, now=START)
    assert dict(p.store.agents())["q"]["offline"] == 1
    gone, changed = p.store.expire(START + 3601)
    assert changed == ["a|q"]
    assert dict(p.store.agents())["q"] == {"available": 0, "busy": 1, "acw": 0, "away": 0, "offline": 0}
