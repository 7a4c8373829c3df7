"""At-least-once replays give exactly the uninterrupted result (docs/architecture.md).

The worker sends a batch's facts, waits for the broker, then writes the batch's state. Kafka
keeps each changelog partition in order, so a crash loses a suffix of each partition's writes
since the last offset commit (never facts of state that persisted); everything after that commit
is consumed again, cut into other batches. This replays that, at random points and cuts, on
simulated traffic with late arrivals (events delivered after the ones that follow them, so that
some are rejected for coming too early), duplicates, transfers and missing wrap-ups, and events
whose times come from the whole range the formats accept (years 1 to 9999, epoch milliseconds or
RFC 3339 at offsets from UTC-12 to UTC+14), in contact centers of several time zones. Stage 2
crashes too (``run_both``): its queue and agent records come back as a prefix of their
changelogs, and it applies the facts again from its last commit.
"""

import copy
import functools
import random
import zlib

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from producers.scenario import Scenario
from producers.simulate import Simulator
from streams.core.agentview import AgentStore
from streams.core.customers import CustomerStage
from streams.core.intake import Intake, Record, partition_for_queue
from streams.core.layout import queue_record_partition
from streams.core.queues import QueueStore
from streams.core.stage2 import apply_message
from streams.dev.local_pipeline import FACTS, LocalPipeline
from tests.unit.helpers import (
    AGENTS,
    CALLS,
    ZONES,
    agent,
    at,
    edge_ts,
    ev,
    settings,
    with_customers,
    with_later_spec_events,
)

TOPICS = {"calls": "cc.calls", "chats": "cc.chats", "agents": "cc.agents"}
START = 1_795_420_000.0
NOW = START + 30 * 60 + 5


#: the customer stage in short windows, so that 30 minutes decide repeats, recoveries, losses and FCR
CUSTOMERS = {
    "customer_key": b"replay-test-key-0123456789",
    "repeat_window_s": 600.0,
    "recovery_window_s": 300.0,
}


def traffic(seed: int, minutes: int = 30, late: float = 0.05, edges: float = 0.01) -> list[Record]:
    """Simulated traffic, a share delivered late, a few twice, and a share (``edges``) with an
    event time from anywhere in the formats' range (helpers.edge_ts)."""
    scenario = Scenario.default().scaled(agents=0.6).replace(missing_wrapup_probability=0.3)
    sim = Simulator(seed, START, scenario)
    rng = random.Random(seed)
    rows = with_customers(with_later_spec_events(sim.advance(START + minutes * 60), rng))
    rows = [
        (t, k, {**e, "ts": edge_ts(rng, NOW)}) if isinstance(e, dict) and rng.random() < edges else (t, k, e)
        for t, k, e in rows
    ]
    delivered, held = [], []
    for i, row in enumerate(rows):  # a share arrives up to 40 events late, behind later events
        if rng.random() < late:
            held.append((i + rng.randint(1, 40), row))
            continue
        delivered.append(row)
        held.sort(key=lambda h: h[0])
        while held and held[0][0] <= i:
            delivered.append(held.pop(0)[1])
    delivered += [row for _, row in held]
    offsets: dict = {}
    records = []
    for topic, key, event in delivered:
        for _ in range(2 if rng.random() < 0.03 else 1):  # a few producer retries: duplicates
            t = TOPICS[topic]
            part = zlib.crc32(key.encode()) % 3
            off = offsets.get((t, part), -1) + 1
            offsets[(t, part)] = off
            records.append(Record(t, part, off, key.encode(), orjson.dumps(event)))
    return records


def views(p: LocalPipeline, now: float) -> dict[object, object]:
    out: dict[object, object] = {}
    for q, ch in p.store.series():
        v = p.store.view(q, ch, now)
        out[(q, ch)] = (
            v.counters,
            v.dequeued,
            v.missed,
            v.wait_hist,
            v.handle_hist,
            v.first_response_hist,
            v.waiting,
            v.windows,
            v.ewt_s,  # prediction (issue 25): the gauges read the records above
            v.sl_projected,
            v.breach_s,
            v.ewt_error_hist,  # EWT error (issue 25): graded from event times, in any arrival order
            v.ewt_error,
            (v.repeat, v.recovered, v.lost, v.fcr_decided, v.fcr_resolved, v.unrecovered),
            (v.resolution_hist, v.case_contacts_hist, v.customers_at_risk),
        )
    out["agents"] = dict(p.store.agents())
    out["call-back list"] = p.store.callbacks()
    out["agent view"] = p.agent_store.rows(now)  # per agent: state, contacts in hand, today, totals
    return out


def crash(p: LocalPipeline, committed: dict, log: list, persisted) -> None:
    """The worker dies: its lifecycle state becomes what a restarted worker recovers, the state
    at the last commit plus, per changelog partition, the first ``persisted(partition, n)`` of
    the n writes made since (Kafka loses a suffix of each partition, never a middle)."""
    per_partition: dict[int, list] = {}
    for partition, key, value in log:
        per_partition.setdefault(partition, []).append((key, value))
    state = copy.deepcopy(committed)
    for partition, writes in per_partition.items():
        for key, value in writes[: persisted(partition, len(writes))]:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = copy.deepcopy(value)
    p.lifecycle.clear()
    p.lifecycle.update(state)
    p.intake = Intake(p.lifecycle, p.settings.kpi)  # a restarted worker rebuilds its index


def run(
    records: list[Record], now: float, rng: random.Random | None = None, crashes: int = 0, zone: str = "UTC"
) -> LocalPipeline:
    """Feed the records in random batches, with sweeps and offset commits between them at random;
    ``crashes`` times, at a random batch end, crash and consume again from the last commit."""
    p = LocalPipeline(settings(partitions=4, timezone=zone, **CUSTOMERS))
    i, n = 0, len(records)
    committed, committed_at, log = copy.deepcopy(p.lifecycle), 0, []
    while i < n:
        j = n if rng is None else min(n, i + rng.randint(1, 400))
        outs = [p.feed(records[i:j], now=now)]
        if rng is not None and rng.random() < 0.3:
            outs.append(p.sweep(now))
        for out in outs:  # values as encoded when the batch ends: the records keep changing
            log += [(part, key, copy.deepcopy(value)) for key, (part, value) in out.writes.items()]
        i = j
        if rng is not None and rng.random() < 0.3:
            committed, committed_at, log = copy.deepcopy(p.lifecycle), i, []
        elif crashes and rng is not None and rng.random() < 0.2:
            crashes -= 1
            crash(p, committed, log, lambda partition, n: rng.randint(0, n))
            committed, log, i = copy.deepcopy(p.lifecycle), [], committed_at
    p.sweep(now)
    return p


def _write_order(records: dict, key: str) -> tuple:
    """As the worker writes them: records, then the customer clock, then the tombstones."""
    return (2 if key not in records else 1 if key[0] == "n" else 0, key)


def _customer_apply(stage: CustomerStage, dirty: set, fact, fid, now: float, _: set) -> None:
    stage.apply(fact, fid, now, dirty)  # its records in a table of their own here, to crash them


class Stage2:
    """Stage 2 as the worker runs it: the facts topic (a log per facts partition, kept: stage 1
    sends a batch's facts before its state), consumed from a committed position into the queue
    and agent tables, whose changelogs (one per table) each lose a suffix per partition in a crash."""

    def __init__(self, p: LocalPipeline) -> None:
        self.p = p
        self.topic: dict[int, list[list]] = {part: [] for part in range(p.settings.partitions)}
        self.position = dict.fromkeys(self.topic, 0)
        self.log: list[tuple[str, int, str, object]] = []  #: (table, partition, key, value) since the commit
        self.commit()

    def send(self, facts: dict[int, list]) -> None:
        for part, rows in facts.items():  # through the wire format, as the facts topic does
            self.topic[part].append(orjson.loads(orjson.dumps(rows)))

    def consume(self, rng: random.Random | None, now: float) -> None:
        """Read up to a random number of messages of each partition (all of them without ``rng``)."""
        for part, messages in self.topic.items():
            end = (
                len(messages) if rng is None else min(len(messages), self.position[part] + rng.randint(0, 3))
            )
            for offset in range(self.position[part], end):
                rows = messages[offset]
                dirty: set[str] = set()
                agents_dirty: set[str] = set()
                customers_dirty: set[str] = set()
                stage = self.p.customer_stage
                stage.begin(part, offset)
                errors = apply_message(
                    orjson.dumps({"f": rows}),
                    self.p.store.apply,
                    self.p.agent_store.apply,
                    now,
                    dirty,
                    agents_dirty,
                    functools.partial(_customer_apply, stage, customers_dirty),
                )
                assert errors == []  # stage 1 makes no fact stage 2 cannot apply
                # the customer stage's facts are sent before its records are written (the worker
                # awaits their delivery), its clock (n|) last
                derived: dict[int, list] = {}
                for target, row in stage.take():
                    derived.setdefault(target, []).append(row)
                self.send(derived)
                self.log += [
                    ("customers", part, key, copy.deepcopy(self.p.customers.get(key)))
                    for key in sorted(customers_dirty, key=functools.partial(_write_order, self.p.customers))
                ]
                # each record lives on the facts partition it gets its facts from
                self.log += [
                    ("queues", part, key, copy.deepcopy(self.p.queues[key])) for key in sorted(dirty)
                ]
                self.log += [
                    ("agents", part, key, copy.deepcopy(self.p.agents[key])) for key in sorted(agents_dirty)
                ]
            self.position[part] = end

    def expire(self, now: float) -> None:
        n = self.p.settings.partitions
        gone, changed = self.p.store.expire(now)  # the worker writes the values, then the deletions
        self.log += [
            ("queues", queue_record_partition(key, n), key, copy.deepcopy(self.p.queues[key]))
            for key in changed
        ]
        self.log += [("queues", queue_record_partition(key, n), key, None) for key in gone]
        gone, changed = self.p.agent_store.expire(now)
        # an agent record lives on the facts partition of its id
        self.log += [("agents", partition_for_queue(key[2:], n), key, None) for key in gone]
        self.log += [
            ("agents", partition_for_queue(key[2:], n), key, copy.deepcopy(self.p.agents[key]))
            for key in changed
        ]

    def commit(self) -> None:
        self.committed = (
            copy.deepcopy(self.p.queues),
            copy.deepcopy(self.p.agents),
            copy.deepcopy(self.p.customers),
            dict(self.position),
        )
        self.log = []

    def crash(self, rng: random.Random) -> None:
        """Both tables back to the commit plus a prefix of each changelog partition's writes
        since; the facts are consumed again from the committed positions."""
        queues, agents, customers, position = copy.deepcopy(self.committed)
        tables = {"queues": queues, "agents": agents, "customers": customers}
        per_partition: dict[tuple[str, int], list] = {}
        for table, part, key, value in self.log:
            per_partition.setdefault((table, part), []).append((key, value))
        for (table, _), writes in per_partition.items():
            for key, value in writes[: rng.randint(0, len(writes))]:
                if value is None:
                    tables[table].pop(key, None)
                else:
                    tables[table][key] = copy.deepcopy(value)
        self.p.queues.clear()
        self.p.queues.update(queues)
        self.p.agents.clear()
        self.p.agents.update(agents)
        self.p.customers.clear()
        self.p.customers.update(customers)
        self.p.customer_stage = CustomerStage(self.p.customers, self.p.settings.kpi, FACTS)
        self.p.store = QueueStore(self.p.queues, self.p.settings.kpi)  # a restarted worker rebuilds its index
        self.p.agent_store = AgentStore(self.p.agents, self.p.settings.kpi)
        self.position = position
        self.commit()


def run_both(
    records: list[Record], now: float, rng: random.Random, crashes: int, zone: str = "UTC"
) -> LocalPipeline:
    """As ``run``, with stage 2 consuming the facts topic on its own schedule, committing at
    random, and crashing too (``crashes`` times each stage, at random moments, independently); a
    stage-1 crash may also come between a batch's facts send and its state write with only some
    facts partitions' messages sent."""
    p = LocalPipeline(settings(partitions=4, timezone=zone, **CUSTOMERS))
    stage2 = Stage2(p)
    k = p.settings.kpi
    sources = [(t, part) for t in k.contact_topics for part in range(k.partitions)]
    i, n = 0, len(records)
    log: list[tuple[int, str, object]]
    committed, committed_at, log = copy.deepcopy(p.lifecycle), 0, []
    crashes1 = crashes2 = crashes
    while i < n:
        j = min(n, i + rng.randint(1, 400))
        outs = [p.intake.process(records[i:j], now=now)]
        if rng.random() < 0.3:
            outs.append(p.intake.sweep())
        outs.append(p.intake.declare_empty(sources))  # the worker's sweep: partitions with no event
        if crashes1 and rng.random() < 0.1:  # killed between the facts send and the state write
            crashes1 -= 1
            stage2.send({part: rows for part, rows in outs[0].facts.items() if rng.random() < 0.5})
            crash(p, committed, log, lambda partition, n: rng.randint(0, n))
            committed, log, i = copy.deepcopy(p.lifecycle), [], committed_at
            continue
        for out in outs:
            stage2.send(out.facts)
            log += [(part, key, copy.deepcopy(value)) for key, (part, value) in out.writes.items()]
        i = j
        stage2.consume(rng, now)
        if rng.random() < 0.3:
            stage2.expire(now)
        if rng.random() < 0.3:
            committed, committed_at, log = copy.deepcopy(p.lifecycle), i, []
        elif crashes1 and rng.random() < 0.2:
            crashes1 -= 1
            crash(p, committed, log, lambda partition, n: rng.randint(0, n))
            committed, log, i = copy.deepcopy(p.lifecycle), [], committed_at
        if rng.random() < 0.3:
            stage2.commit()
        elif crashes2 and rng.random() < 0.2:
            crashes2 -= 1
            stage2.crash(rng)
    stage2.send(p.intake.sweep().facts)
    stage2.send(p.intake.declare_empty(sources).facts)
    while any(stage2.position[part] < len(log) for part, log in stage2.topic.items()):
        stage2.consume(None, now)  # the customer stage's facts go back to the topic: read them too
    stage2.expire(now)
    return p


RECORDS = traffic(7)


@functools.cache
def clean(zone: str) -> dict[object, object]:
    """The uninterrupted result in a contact center of this time zone."""
    return views(run(RECORDS, NOW, zone=zone), NOW)


def test_the_traffic_has_events_at_the_edges_and_they_are_rejected_in_every_zone():
    for zone in ZONES:
        p = run(RECORDS, NOW, zone=zone)
        reasons = {d.reason for d in p.dead}
        assert {"too_old", "future_time"} <= reasons and "apply_error" not in reasons


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from(ZONES))
def test_replays_from_the_last_commit_after_crashes_give_the_uninterrupted_result(seed, zone):
    crashed = run(RECORDS, NOW, random.Random(seed), crashes=4, zone=zone)
    assert views(crashed, NOW) == clean(zone)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from(ZONES))
def test_the_same_when_stage_two_crashes_and_replays_the_facts_too(seed, zone):
    """Stage 2's own crashes: the queue and agent records come back as a prefix of their
    changelogs and the facts are applied again from the last commit, mixed with the facts stage 1
    sends again after its crashes; each record's marks keep every fact applied once."""
    crashed = run_both(RECORDS, NOW, random.Random(seed), crashes=4, zone=zone)
    assert views(crashed, NOW) == clean(zone)


def _early_ended_then_transfer(persisted) -> tuple[dict, dict]:
    """``ended`` arrives before ``answered`` (rejected: the contact is still waiting), then the
    contact is transferred from handling. Uninterrupted: sales counts it answered, handled and
    transferred, billing offered. A crash after the first batch must not change that."""
    first = [
        (CALLS, ev("offered", "x", at("10:00:00"), queue="sales")),
        (CALLS, ev("ended", "x", at("10:03:00"))),
        (CALLS, ev("answered", "x", at("10:00:10"), agent_id="a")),
    ]
    second = [(CALLS, ev("transferred", "x", at("10:04:00"), queue="billing"))]
    now = at("10:05:00")
    clean = LocalPipeline(settings())
    records = [clean.record(t, e, key="x") for t, e in first + second]
    clean.feed(records, now=now)
    crashed = LocalPipeline(settings())
    out = crashed.feed(records[:3], now=now)
    log = [(part, key, copy.deepcopy(value)) for key, (part, value) in out.writes.items()]
    crash(crashed, {}, log, persisted)
    crashed.feed(records[:3], now=now)  # nothing was committed: the batch is consumed again
    crashed.feed(records[3:], now=now)
    return views(clean, now), views(crashed, now)


def test_an_event_rejected_for_arriving_early_is_not_decided_again_after_a_crash():
    clean, crashed = _early_ended_then_transfer(lambda partition, n: n)  # all of the state persisted
    assert clean[("billing", "voice")][0]["offered"] == 1
    assert (
        clean[("sales", "voice")][0]["transferred_out"] == 1 and clean[("sales", "voice")][0]["handled"] == 1
    )
    assert crashed == clean


def test_the_same_when_only_the_contact_persisted_and_not_the_partition_watermark():
    # the contact's record is written before the watermark; a crash can keep one and lose the other
    clean, crashed = _early_ended_then_transfer(lambda partition, n: n - 1)
    assert crashed == clean


#: replaying a backlog three days old (a worker catching up, or a recording replayed): the wall
#: clock is far past every event time
LATER = START + 3 * 86400


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_the_same_for_a_backlog_days_old(seed):
    crashed = run(RECORDS, LATER, random.Random(seed), crashes=4)
    assert views(crashed, LATER) == views(run(RECORDS, LATER), LATER)


def test_an_agent_of_a_days_old_backlog_is_not_forgotten_between_two_of_its_facts():
    """Agent records expire by event time. By the wall clock, the sweep after a crash's first
    incarnation dropped the offline agent of days-old input, marks and all; the replayed batch
    (its facts sent, its state lost) then counted only the second contact, on a new record."""

    def contact(cid: str, start: str, end: str) -> list:
        return [
            (CALLS, ev("offered", cid, at(start), queue="sales")),
            (CALLS, ev("answered", cid, at(start) + 5, agent_id="a")),
            (CALLS, ev("ended", cid, at(end))),
            (CALLS, ev("wrapup_ended", cid, at(end) + 30)),
        ]

    first = [
        (AGENTS, agent("a", "available", ["sales"], at("09:00:00"))),
        *contact("c1", "09:01:00", "09:04:00"),
    ]
    second = [
        *contact("c2", "09:10:00", "09:14:00"),
        (AGENTS, agent("a", "offline", ["sales"], at("09:20:00"))),
    ]
    now = at("09:30:00", day="2026-11-26")
    clean = LocalPipeline(settings())
    records = [clean.record(t, e, key="k") for t, e in first + second]
    clean.feed(records, now=now)
    clean.sweep(now)
    crashed = LocalPipeline(settings())
    crashed.feed(records[: len(first)], now=now)
    committed = copy.deepcopy(crashed.lifecycle)  # offsets committed after the first batch
    out = crashed.feed(records[len(first) :], now=now)
    crashed.sweep(now)
    log = [(part, key, copy.deepcopy(value)) for key, (part, value) in out.writes.items()]
    crash(crashed, committed, log, lambda partition, n: 0)  # its facts were sent, its state lost
    crashed.feed(records[len(first) :], now=now)
    crashed.sweep(now)
    [row] = clean.agent_store.rows(now)
    assert (row.agent, row.state, row.handled_total, row.handle_s_total) == ("a", "offline", 2, 205 + 265)
    assert views(crashed, now) == views(clean, now)


def test_traffic_exercises_timeouts_transfers_duplicates_early_arrivals_and_the_later_spec_events():
    """... and first responses, which the replays above compare too (views: histogram and windows)."""
    from streams.core import kpis

    p = run(RECORDS, NOW)
    dup = sum(v for (t, r), v in p.results.items() if r == "duplicate")
    early = sum(v for (t, r), v in p.results.items() if r == "rejected")  # arrived before their predecessor
    all_views = [p.store.view(q, ch, NOW) for q, ch in p.store.series()]
    handled = sum(v.counters["handled"] for v in all_views)
    transferred = sum(v.counters["transferred_out"] for v in all_views)
    assert dup > 10 and handled > 50 and transferred > 0 and early > 10
    dequeued = sum(n for v in all_views for n in v.dequeued.values())
    other = sum(v.dequeued["other"] for v in all_views)
    missed = sum(v.missed for v in all_views)
    ces = sum(v.windows["today"][kpis.CES_N] for v in all_views)
    assert dequeued > 5 and 0 < other < dequeued and missed > 20 and ces > 5
    responded = sum(sum(v.first_response_hist[:-1]) for v in all_views)
    assert responded > 20 and sum(v.windows["today"][kpis.FR_N] for v in all_views) > 10
    rows = p.agent_store.rows(NOW)
    assert len(rows) > 10
    assert sum(r.handled_total for r in rows) == handled  # every handled segment was answered by an agent
    assert sum(r.missed_total for r in rows) == missed
    assert any(r.contacts for r in rows) and all(r.state is not None for r in rows if r.handled_total)
    assert len({s for r in rows for s, sec in r.state_s_today.items() if sec > 0}) >= 3


def test_offline_agents_expire_in_stage_two():
    p = LocalPipeline(settings(retention_s=3600))
    recs = [
        p.record(
            "cc.agents",
            {
                "event_id": "1",
                "type": "state",
                "agent_id": "a",
                "state": "offline",
                "queues": ["q"],
                "ts": int(START * 1000),
            },
        ),
        p.record(
            "cc.agents",
            {
                "event_id": "2",
                "type": "state",
                "agent_id": "b",
                "state": "busy",
                "queues": ["q"],
                "ts": int(START * 1000),
            },
        ),
    ]
    p.feed(recs, now=START)
    assert dict(p.store.agents())["q"]["offline"] == 1
    gone, changed = p.store.expire(START + 3601)
    assert changed == ["a|q"]
    assert dict(p.store.agents())["q"] == {"available": 0, "busy": 1, "acw": 0, "away": 0, "offline": 0}


def test_the_traffic_exercises_every_customer_figure_in_one_order():
    """The comparisons above are not vacuous: the uninterrupted run decides every customer figure,
    and applies no customer fact out of its order (streams/core/customers.py)."""
    p = run(RECORDS, NOW)
    views_ = [p.store.view(q, ch, NOW) for q, ch in p.store.series()]
    assert sum(sum(v.repeat.values()) for v in views_) > 10
    assert all(sum(getattr(v, name) for v in views_) > 0 for name in ("recovered", "lost", "fcr_decided"))
    assert sum(v.resolution_hist[-1] for v in views_ if v.resolution_hist) > 0
    assert sum(v.customers_at_risk or 0 for v in views_) > 0 and p.customer_stage.applied_late == 0
