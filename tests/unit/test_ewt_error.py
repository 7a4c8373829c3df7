"""EWT error (docs/kpis.md "EWT error"): each contact's wait graded against the EWT at its offered,
from event times only, computed by hand; the same whatever order the facts come in."""

import random
import zlib

import orjson
import pytest

from producers.scenario import Scenario
from producers.simulate import Simulator
from streams.core.facts import Fact, Kind
from streams.core.layout import EWT_ERROR_BUCKETS, ended_key, graded_key
from streams.core.predict import QueueNow, graded_ewt, interval_bounds, project
from streams.core.queues import FOLD_AFTER_S, QueueStore
from streams.core.stage2 import apply_message
from streams.dev.local_pipeline import LocalPipeline
from streams.metrics.kpi_exposition import KpiExposition
from tests.unit.helpers import AGENTS, CALLS, Clock, agent, at, ev, feed, sample, samples, settings

NOW = at("10:10:00")
#: three contacts before 10:05 (3 answers in the 5 minutes before 10:05:00, none waiting behind
#: another), then four offered within 4 s; c4 still waits at NOW
BEFORE = [
    (CALLS, ev("offered", "p1", at("10:00:00"), queue="sales")),
    (CALLS, ev("answered", "p1", at("10:00:05"), agent_id="a")),
    (CALLS, ev("offered", "p2", at("10:00:10"), queue="sales")),
    (CALLS, ev("answered", "p2", at("10:00:20"), agent_id="a")),
    (CALLS, ev("offered", "p3", at("10:01:00"), queue="sales")),
    (CALLS, ev("answered", "p3", at("10:01:05"), agent_id="a")),
]
SURGE = [
    (CALLS, ev("offered", "c1", at("10:05:00"), queue="sales")),
    (CALLS, ev("offered", "c4", at("10:05:01"), queue="sales")),
    (CALLS, ev("offered", "c2", at("10:05:02"), queue="sales")),
    (CALLS, ev("offered", "c3", at("10:05:04"), queue="sales")),
    (CALLS, ev("abandoned", "c2", at("10:05:32"))),
    (CALLS, ev("answered", "c1", at("10:06:00"), agent_id="a")),
    (CALLS, ev("answered", "c3", at("10:07:04"), agent_id="b")),
]
#: by hand. p1, p2, p3 and c1 have nobody waiting ahead: EWT 0, error = their wait (5, 10, 5, 60).
#: c2 (10:05:02): c1 and c4 ahead, 3 answers in [10:00:00, 10:05:00): EWT 2 × 300 / 3 = 200 s,
#: error 30 − 200 = −170 (abandoned). c3 (10:05:04): c1, c4, c2 ahead: 300 s, error 120 − 300 = −180.
ANSWERED_ERRORS = [5.0, 10.0, 5.0, 60.0, -180.0]
ABANDONED_ERRORS = [-170.0]


def pipeline(events) -> LocalPipeline:
    p = LocalPipeline(settings())
    feed(p, events, NOW)
    return p


def cumulative(errors: list[float]) -> list[float]:
    return [float(sum(1 for e in errors if e <= bound)) for bound in EWT_ERROR_BUCKETS]


def test_graded_ewt_by_hand():
    assert graded_ewt(0, 0.0, 300.0) == 0.0  # nobody ahead: an agent is free
    assert graded_ewt(2, 3.0, 300.0) == 200.0  # 2 ahead at 3 answers per 300 s
    assert graded_ewt(1, 0.0, 300.0) is None  # someone ahead, nothing answered: no estimate


def test_each_wait_is_graded_against_the_ewt_at_its_offered():
    p = pipeline(BEFORE + SURGE)
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    sv = {"queue": "sales", "channel": "voice"}
    for outcome, errors in (("answered", ANSWERED_ERRORS), ("abandoned", ABANDONED_ERRORS)):
        got = [
            sample(m, "ccmon_ewt_error_seconds_bucket", **sv, outcome=outcome, le=f"{float(b)}")
            for b in EWT_ERROR_BUCKETS
        ]
        assert got == cumulative(errors)
        assert sample(m, "ccmon_ewt_error_seconds_count", **sv, outcome=outcome) == len(errors)
        assert sample(m, "ccmon_ewt_error_seconds_sum", **sv, outcome=outcome) == sum(errors)
    assert sample(m, "ccmon_ewt_error_seconds_count", **sv, outcome="dequeued") is None
    # windows by the answer's bucket: 5m holds c1 and c3 (60, −180), 15m and 1h all five
    assert sample(m, "ccmon_ewt_error_abs_seconds", **sv, window="5m") == 120.0
    assert sample(m, "ccmon_ewt_error_bias_seconds", **sv, window="5m") == -60.0
    for window in ("15m", "1h"):
        assert sample(m, "ccmon_ewt_error_abs_seconds", **sv, window=window) == 52.0
        assert sample(m, "ccmon_ewt_error_bias_seconds", **sv, window=window) == -20.0
    assert sample(m, "ccmon_ewt_error_abs_seconds", **sv, window="today") is None


def test_nothing_answered_before_means_no_grade():
    """c2 waits behind c1 with no answer in the 5 minutes before: no EWT, not graded; c1 is (0)."""
    p = pipeline(SURGE[:1] + SURGE[2:3] + [(CALLS, ev("answered", "c1", at("10:06:00"), agent_id="a"))])
    p2 = pipeline(SURGE[:1] + SURGE[2:3] + [(CALLS, ev("answered", "c1", at("10:06:00"), agent_id="a"))])
    p2.feed([p2.record(CALLS, ev("answered", "c2", at("10:06:30"), agent_id="b"), key="c2")], now=NOW)
    for pipe in (p, p2):
        view = pipe.store.view("sales", "voice", NOW)
        assert view.ewt_error_hist["answered"][-1] == 60.0  # c1 alone: error 60
        assert sum(view.ewt_error_hist["answered"][:-1]) == 1


@pytest.mark.parametrize("seed", range(12))
def test_the_same_in_any_order_the_facts_reach_stage_two(seed):
    """The facts of different source partitions reach stage 2 interleaved in any order (those of
    one partition in its order, which the marks rely on): the grades do not move."""
    p = LocalPipeline(settings())
    spread = {"p1": 0, "p2": 1, "p3": 2, "c1": 0, "c2": 1, "c3": 2, "c4": 1}
    records = [p.record(t, e, e["contact_id"], spread[e["contact_id"]]) for t, e in BEFORE + SURGE]
    out = p.intake.process(records, now=NOW)
    rows = [row for part in sorted(out.facts) for row in out.facts[part]]
    by_source: dict[str, list] = {}
    for row in rows:
        by_source.setdefault(row[0], []).append(row)
    assert len(by_source) == 3  # the contacts are spread over the calls topic's partitions
    rng = random.Random(seed)
    queues = [list(r) for r in by_source.values()]
    shuffled = []
    while queues:
        pick = rng.choice(queues)
        shuffled.append(pick.pop(0))
        if not pick:
            queues.remove(pick)
    store = QueueStore({}, settings().kpi)
    for batch in (shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]):
        assert (
            apply_message(orjson.dumps({"f": batch}), store.apply, lambda *a: None, NOW, set(), set()) == []
        )
    view = store.view("sales", "voice", NOW)
    expected = pipeline(BEFORE + SURGE).store.view("sales", "voice", NOW)
    assert (view.ewt_error_hist, view.ewt_error) == (expected.ewt_error_hist, expected.ewt_error)
    assert view.ewt_error_hist["answered"][-1] == sum(ANSWERED_ERRORS)


def test_contacts_are_folded_for_good_two_hours_after_they_were_offered():
    p = pipeline(BEFORE + SURGE)
    before = p.store.view("sales", "voice", NOW).ewt_error_hist
    # two hours after 10:04:00: the contacts offered before 10:04:00 (p1, p2, p3) are folded;
    # c1..c3 still read them (ahead, answered before)
    later = at("10:04:00") + FOLD_AFTER_S
    gone, changed = p.store.expire(later)
    assert graded_key("sales", "voice") in changed and not [k for k in gone if k.startswith("e|")]
    folded = p.queues[graded_key("sales", "voice")]
    assert folded["through"] == int(at("10:01:00"))
    assert folded["v"]["answered"][-1] == 20.0  # 5 + 10 + 5
    assert p.store.view("sales", "voice", later).ewt_error_hist == before
    # a contact of a folded bucket whose end comes after the fold is read only as someone ahead
    # or answered before, never graded: an abandon at 10:00:03 is neither, and changes nothing
    p.queues[ended_key("sales", "voice", int(at("10:00:00")))]["v"].append(
        [at("10:00:00"), at("10:00:03"), "abandoned", 0]
    )
    # (a store over the records as they are now: the store keeps its grades between reads, and a
    # record written behind its back is not a fact it applied)
    assert QueueStore(p.queues, settings().kpi).view("sales", "voice", later).ewt_error_hist == before
    # long after: everything folded, with the grades it had; the window buckets are gone by then
    # and were never needed
    much_later = at("13:00:00")
    p.store.expire(much_later)
    assert p.queues[graded_key("sales", "voice")]["through"] == int(at("10:05:00"))
    assert p.store.view("sales", "voice", much_later).ewt_error_hist == before
    assert not p.store.index.buckets[("sales", "voice")]


def _simulated_facts(seed: int, minutes: int) -> tuple[dict[str, list], float]:
    """Stage 1's facts of ``minutes`` of simulated traffic (three calls partitions, chats, agents),
    by source partition, in the order each source sends them; and the end of the traffic."""
    start = at("08:00:00")
    sim = Simulator(seed, start, Scenario.default().scaled(agents=0.6))
    end = start + minutes * 60
    p = LocalPipeline(settings(partitions=4))
    topics = {"calls": CALLS, "chats": "cc.chats", "agents": "cc.agents"}
    records = [
        p.record(topics[t], e, key, zlib.crc32(key.encode()) % 3)
        for t, key, e in sim.advance(end)
        if isinstance(e, dict)
    ]
    out = p.intake.process(records, now=end)
    by_source: dict[str, list] = {}
    for part in sorted(out.facts):
        for row in out.facts[part]:
            by_source.setdefault(row[0], []).append(row)
    return by_source, end


@pytest.mark.parametrize("seed", range(4))
def test_folds_between_interleavings_give_the_same_grades(seed):
    """Two hours and a half of traffic reach stage 2 in five phases, each phase's facts of every
    source interleaved at random (or source after source), with an expiry after each phase at a
    clock that passes the horizon of the early contacts: the same grades, and the same as with
    nothing ever folded."""
    by_source, end = _simulated_facts(seed, 150)
    rng = random.Random(seed)

    def run(shuffle: bool, expire: bool = True) -> dict:
        store = QueueStore({}, settings(partitions=4).kpi)
        for k in range(5):
            now = end - (4 - k) * 1800  # the last phases fold the first hour's contacts
            phase = [rows[len(rows) * k // 5 : len(rows) * (k + 1) // 5] for rows in by_source.values()]
            order = [row for rows in phase for row in rows]
            if shuffle:
                queues = [list(rows) for rows in phase if rows]
                order = []
                while queues:
                    pick = rng.choice(queues)
                    order.append(pick.pop(0))
                    if not pick:
                        queues.remove(pick)
            assert (
                apply_message(orjson.dumps({"f": order}), store.apply, lambda *a: None, now, set(), set())
                == []
            )
            if expire:
                store.expire(now)
        folded = sum(
            sum(raw[:-1])
            for key, rec in store.data.items()
            if key.startswith("k|")
            for raw in rec["v"].values()
        )
        views = {s: (v.ewt_error_hist, v.ewt_error) for s in store.series() for v in [store.view(*s, end)]}
        return {"folded": folded, "views": views}

    clean = run(False)
    graded = sum(sum(raw[:-1]) for hists, _ in clean["views"].values() for raw in hists.values())
    assert graded > 500 and clean["folded"] > 100  # a good part graded for good before the end
    assert run(True) == clean
    # and never folded (every bucket kept): the same histograms and windows
    assert run(False, expire=False)["views"] == clean["views"]


def test_the_projection_takes_the_last_two_minutes_arrivals_when_they_are_above_the_five_minutes(
    monkeypatch,
):
    """A surge: 12 contacts offered from 10:08:10 on, two before, 3 agents available, AHT 180 s.
    The 5m window (buckets after 10:05:00) has 13 offered and no answer (h1's at 10:05:02 is in
    the 10:05:00 bucket): 13/300 per s; the last 2 minutes' 12/120 = 0.1/s. The projection is
    project()'s at 0.1/s, not its 5m one."""
    before = [
        (CALLS, ev("offered", "h1", at("10:05:00"), queue="sales")),
        (CALLS, ev("answered", "h1", at("10:05:02"), agent_id="a1")),
        (CALLS, ev("ended", "h1", at("10:07:50"))),
        (CALLS, ev("wrapup_ended", "h1", at("10:08:02"))),  # handle 180 s
        (CALLS, ev("offered", "h2", at("10:05:30"), queue="sales")),
        (CALLS, ev("abandoned", "h2", at("10:05:40"))),
    ]
    agents = [(AGENTS, agent(f"a{i}", "available", ["sales"], at("10:00:00"))) for i in range(3)]
    surge = [(CALLS, ev("offered", f"s{i}", at("10:08:10") + 5 * i, queue="sales")) for i in range(12)]
    now = at("10:10:00")
    p = LocalPipeline(settings())
    feed(p, agents + before + surge, now)
    waiting = [at("10:08:10") + 5 * i for i in range(12)]
    _, end, day_start, day_end = interval_bounds(now, p.store.zone, 1800)

    def projected(rate: float) -> float | None:
        return project(
            QueueNow(12, 3, 0, 0, 180.0, 0.0, rate),
            waiting,
            now=now,
            interval_end=end,
            day_end=day_end,
            interval_sums=(1.0, 2.0),  # h1 within T, h2 abandoned after 10 s
            day_sums=(1.0, 2.0),
            day_offered_per_s=14 / (now - day_start),
            threshold_s=20.0,
            target=0.8,
        ).interval

    assert p.store.view("sales", "voice", now).sl_projected_interval == pytest.approx(projected(12 / 120))
    monkeypatch.setattr("streams.core.queues.PREDICT_RECENT_S", 300)  # the 5 minutes' rate alone
    five = p.store.view("sales", "voice", now).sl_projected_interval
    assert five == pytest.approx(projected(13 / 300)) and five != pytest.approx(projected(12 / 120))


def test_a_chat_queue_without_agent_states_is_projected_at_its_answers_not_as_unstaffed():
    """Chatwoot and libredesk send no agent state: a queue answering every contact within 2 s,
    one a second for 3 minutes, has no agent record. Its staffing is unknown, not zero: served
    at its answers of the last 2 minutes (120 / 120 s = 1/s, as the arrivals are counted), it is
    not projected to breach (with zero staff every arrival would miss, and the predictive alert
    paged on it: the alerting test's quiet queue). Once an agent of the queue reports (offline
    here), the same counts mean nobody answers, and the breach is projected."""
    t0 = at("10:00:00")
    contacts = []
    for i in range(180):
        contacts.append((CALLS, ev("offered", f"w{i}", t0 + i, queue="support")))
        contacts.append((CALLS, ev("answered", f"w{i}", t0 + i + 2, agent_id="a")))
    now = t0 + 182
    p = LocalPipeline(settings())
    feed(p, contacts, now)
    view = p.store.view("support", "voice", now)
    assert view.breach_s is None and view.sl_projected_interval == pytest.approx(1.0, abs=1e-6)
    feed(p, [(AGENTS, agent("a9", "offline", ["support"], t0))], now)
    assert p.store.view("support", "voice", now).breach_s is not None


@pytest.mark.parametrize("seed", range(3))
def test_grades_kept_between_reads_are_those_graded_from_scratch(seed):
    """The store keeps each bucket's grades between reads and grades again only those a fact
    may have changed (``_Grades``): read after every few facts, between expiries that fold and
    drop buckets, from sources interleaved at random (late and out-of-order facts among them),
    every view's EWT error equals a new store's over the same records, which grades everything.
    One source lags the others by half the traffic, so that its facts come far behind the
    newest (the kept sums of the buckets before the last half hour must give way to them)."""
    minutes = 90
    by_source, end = _simulated_facts(seed, minutes)
    rng = random.Random(seed)
    kpi = settings(partitions=4).kpi
    store = QueueStore({}, kpi)
    queues = [list(rows) for rows in by_source.values() if rows]
    lagging = queues[seed % len(queues)]
    total = sum(len(rows) for rows in queues)
    applied = reads = 0
    while queues:
        chunk = []
        for _ in range(rng.choice((1, 1, 2, 5, 40))):
            if not queues:
                break
            ready = [q for q in queues if q is not lagging] if applied < total // 2 else queues
            pick = rng.choice(ready or queues)
            chunk.append(pick.pop(0))
            if not pick:
                queues.remove(pick)
        applied += len(chunk)
        # the clock two hours after the traffic applied by now, less 50 minutes: expiries fold
        # the contacts offered 50 minutes before those arriving (the lagging source's are later)
        now = end - minutes * 60 * (1 - applied / total) + FOLD_AFTER_S - 3000
        message = orjson.dumps({"f": chunk})
        assert apply_message(message, store.apply, lambda *a: None, now, set(), set()) == []
        if rng.random() < 0.1:
            store.expire(now)
        if rng.random() < 0.5:
            fresh = QueueStore(store.data, kpi)
            for s in store.series():
                kept, scratch = store.view(*s, now), fresh.view(*s, now)
                assert (kept.ewt_error_hist, kept.ewt_error) == (scratch.ewt_error_hist, scratch.ewt_error)
            reads += 1
    folded = [k for k in store.data if k.startswith("k|")]
    assert reads > 100 and folded  # read often, and buckets were folded (and dropped) between reads


def _offered(cid: str, t: str) -> Fact:
    return Fact(Kind.OFFERED, "sales", "voice", at(t), cid, 0.0, False, None)


def _answered(cid: str, offered: str, t: str) -> Fact:
    return Fact(Kind.ANSWERED, "sales", "voice", at(t), cid, at(t) - at(offered), False, None)


def _apply(store: QueueStore, facts: list[Fact], now: float) -> None:
    for i, fact in enumerate(facts):
        store.apply(fact, ("cc.calls/0", len(store.data) * 100 + i, 0), now, set())


def _graded_answers(store: QueueStore, now: float) -> tuple[list[float], list[float]]:
    """The answered histogram of the store, and of a new store over the same records."""
    fresh = QueueStore(store.data, store.settings)
    return (
        store.view("sales", "voice", now).ewt_error_hist["answered"],
        fresh.view("sales", "voice", now).ewt_error_hist["answered"],
    )


def test_an_ended_wait_the_waiting_record_no_longer_held_grades_the_contacts_after_it_again():
    """A crash can leave the ``w|`` record without a contact whose end the ``e|`` record has not
    kept yet: the replayed end adds a wait ahead of the contacts offered after it, with no change
    to the waiting contacts. The grades kept from before must not stay."""
    now = at("10:30:00")
    store = QueueStore({}, settings().kpi)
    _apply(store, [_offered("a", "10:00:00"), _answered("a", "10:00:00", "10:00:40")], now)
    _apply(store, [_offered("b", "10:01:00"), _answered("b", "10:01:00", "10:02:00")], now)
    kept, scratch = _graded_answers(store, now)
    assert kept == scratch
    # "x" waited 10:00:30-10:01:30, ahead of b; its offered fact is not applied (the w| record's
    # mark had passed it), only its answer
    _apply(store, [_answered("x", "10:00:30", "10:01:30")], now)
    kept, scratch = _graded_answers(store, now)
    assert kept == scratch and scratch[-1] != 40.0 + 60.0 + 60.0  # b graded with x ahead


def test_an_answer_dropped_with_its_folded_bucket_grades_the_contacts_after_it_again():
    """A wait longer than the look-back answered just before a contact not folded: the fold drops
    the bucket it was offered in, and with it an answer that counted before that contact (as the
    store has graded since the EWT error came: docs/kpis.md). The grades kept must follow."""
    store = QueueStore({}, settings().kpi)
    now = at("09:50:00")
    _apply(
        store,
        [
            _offered("long", "09:00:00"),
            _offered("z", "09:39:00"),
            _answered("z", "09:39:00", "09:39:05"),
            _answered("long", "09:00:00", "09:40:00"),
            _offered("y", "09:41:30"),
            _offered("x", "09:42:00"),
            _answered("x", "09:42:00", "09:43:00"),
            _answered("y", "09:41:30", "09:44:00"),
        ],
        now,
    )
    before, scratch = _graded_answers(store, now)
    assert before == scratch
    later = at("09:40:00") + FOLD_AFTER_S  # folds through z's bucket, drops the long wait's
    gone, _ = store.expire(later)
    assert ended_key("sales", "voice", int(at("09:00:00"))) in gone
    kept, scratch = _graded_answers(store, later)
    assert kept == scratch
    assert kept != before  # x's grade read the long wait's answer, and does not any more
