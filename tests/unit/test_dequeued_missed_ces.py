"""SPEC's later additions through both stages: ``dequeued``, ``missed``, CES and the agent's name
and reason, against values computed by hand in the comments."""

import pytest

from streams.core import kpis
from streams.core.lifecycle import AgentState, ContactState
from streams.core.queues import WAIT_BUCKETS
from streams.metrics.kpi_exposition import KpiExposition
from tests.unit.helpers import AGENTS, CALLS, CHATS, NOW, agent, at, ev, run, sample, samples

REASONS = ("timeout", "empty", "key", "withdraw", "overflow", "other")

SCENARIO = [
    # d1: answered after 10 s by a1 (within T = 20 s)
    (CALLS, ev("offered", "d1", at("10:00:00"), queue="sales")),
    (CALLS, ev("answered", "d1", at("10:00:10"), agent_id="a1")),
    # d2: missed by a1 and a2, answered by a3 after 30 s (outside T); it waited all along
    (CALLS, ev("offered", "d2", at("10:00:30"), queue="sales")),
    (CALLS, ev("missed", "d2", at("10:00:40"), agent_id="a1")),
    (CALLS, ev("missed", "d2", at("10:00:50"), agent_id="a2")),
    (CALLS, ev("answered", "d2", at("10:01:00"), agent_id="a3")),
    # d3: the queue's maximum wait: dequeued after 60 s, reason timeout
    (CALLS, ev("offered", "d3", at("10:01:00"), queue="sales")),
    (CALLS, ev("dequeued", "d3", at("10:02:00"), reason="timeout")),
    # d4: dequeued after 5 s without a reason: other
    (CALLS, ev("offered", "d4", at("10:02:00"), queue="sales")),
    (CALLS, ev("dequeued", "d4", at("10:02:05"))),
    # d5: dequeued after 10 s with a valid reason outside SPEC's vocabulary: counted as other
    (CALLS, ev("offered", "d5", at("10:03:00"), queue="sales")),
    (CALLS, ev("dequeued", "d5", at("10:03:10"), reason="voicemail")),
    # d6: short abandon (3 s); d7: abandon after 30 s
    (CALLS, ev("offered", "d6", at("10:03:30"), queue="sales")),
    (CALLS, ev("abandoned", "d6", at("10:03:33"))),
    (CALLS, ev("offered", "d7", at("10:04:00"), queue="sales")),
    (CALLS, ev("abandoned", "d7", at("10:04:30"))),
    # d8: transferred while waiting to support, where the customer presses a key after 30 s
    (CALLS, ev("offered", "d8", at("10:05:00"), queue="sales")),
    (CALLS, ev("transferred", "d8", at("10:05:10"), queue="support")),
    (CALLS, ev("dequeued", "d8", at("10:05:40"), reason="key")),
    # d9: missed by a1, still waiting at 10:10:00 (oldest wait 240 s)
    (CALLS, ev("offered", "d9", at("10:06:00"), queue="sales")),
    (CALLS, ev("missed", "d9", at("10:06:05"), agent_id="a1")),
]


def test_dequeued_and_missed_totals_histograms_and_waiting():
    p = run(SCENARIO)
    assert p.dead == []
    sales = p.store.view("sales", "voice", NOW)
    assert sales.counters == {
        "offered": 9,
        "answered": 2,
        "abandoned": 2,
        "short_abandoned": 1,
        "answered_in_threshold": 1,
        "handled": 0,
        "transferred_out": 1,
    }
    assert sales.dequeued == {"timeout": 1, "empty": 0, "key": 0, "withdraw": 0, "overflow": 0, "other": 2}
    assert sales.missed == 3  # d2 twice, d9 once
    # dequeued waits 60 (le=60), 5 (le=5), 10 (le=10); answered and abandoned are untouched by them
    wd = sales.wait_hist["dequeued"]
    assert (
        wd[WAIT_BUCKETS.index(60)] == 1 and wd[WAIT_BUCKETS.index(5)] == 1 and wd[WAIT_BUCKETS.index(10)] == 1
    )
    assert sum(wd[:-1]) == 3 and wd[-1] == pytest.approx(75.0)
    assert sum(sales.wait_hist["answered"][:-1]) == 2 and sales.wait_hist["answered"][-1] == pytest.approx(
        40.0
    )
    assert sum(sales.wait_hist["abandoned"][:-1]) == 2
    # d3, d4, d5 left, d8 left by transfer; only d9 waits (a missed offer does not end the wait)
    assert sales.waiting == 1 and sales.oldest_wait_s == pytest.approx(240.0)

    support = p.store.view("support", "voice", NOW)
    assert support.counters["offered"] == 1 and support.dequeued["key"] == 1 and support.missed == 0
    assert support.wait_hist["dequeued"][-1] == pytest.approx(30.0)  # waiting from transferred.ts
    assert support.waiting == 0


def test_service_level_counts_dequeued_in_its_denominator_and_abandonment_does_not():
    p = run(SCENARIO)
    for window in ("15m", "1h", "today"):
        v = p.store.view("sales", "voice", NOW).windows[window]
        assert (v[kpis.DEQUEUED], v[kpis.MISSED]) == (3, 3)
        # SL = in threshold 1 / (answered 2 + abandoned 2 - short 1 + dequeued 3) = 1/6
        assert kpis.service_level(v) == pytest.approx(1 / 6)
        # abandonment = (2 - 1) / (2 + 2 - 1) = 1/3, as if the dequeued contacts did not exist
        assert kpis.abandon_ratio(v) == pytest.approx(1 / 3)
        assert kpis.asa(v) == pytest.approx(20.0)  # (10 + 30) / 2: dequeued waits are not answers
        s = p.store.view("support", "voice", NOW).windows[window]
        # support: nothing answered, one dequeued: SL 0 / 1 = 0; abandonment has no denominator
        assert kpis.service_level(s) == 0.0 and kpis.abandon_ratio(s) is None
    # 5m at 10:10:00 holds buckets after 10:05:00: sales has d9's offer and missed offer only
    v5 = p.store.view("sales", "voice", NOW).windows["5m"]
    assert (v5[kpis.OFFERED], v5[kpis.DEQUEUED], v5[kpis.MISSED]) == (1, 0, 1)
    assert kpis.service_level(v5) is None
    s5 = p.store.view("support", "voice", NOW).windows["5m"]
    assert (s5[kpis.OFFERED], s5[kpis.DEQUEUED]) == (1, 1) and kpis.service_level(s5) == 0.0


def test_dequeued_and_missed_count_in_the_window_of_their_own_event_time():
    events = [
        (CALLS, ev("offered", "x", at("10:00:00"), queue="q")),
        (CALLS, ev("missed", "x", at("10:04:55"), agent_id="a1")),
        (CALLS, ev("missed", "x", at("10:05:10"), agent_id="a2")),
        (CALLS, ev("dequeued", "x", at("10:06:00"), reason="overflow")),
    ]
    v = run(events).store.view("q", "voice", NOW).windows
    # 5m after 10:05:00: the offer (10:00:00) and the first missed offer (10:04:55) are out
    assert (v["5m"][kpis.OFFERED], v["5m"][kpis.MISSED], v["5m"][kpis.DEQUEUED]) == (0, 1, 1)
    assert (v["15m"][kpis.OFFERED], v["15m"][kpis.MISSED], v["15m"][kpis.DEQUEUED]) == (1, 2, 1)
    # SL in 5m: 0 answered of 1 dequeued (the dequeue counts where it happened, not at offered)
    assert kpis.service_level(v["5m"]) == 0.0


def test_dequeued_after_a_transfer_while_handled_counts_in_the_target_queue():
    events = [
        (CALLS, ev("offered", "t", at("10:00:00"), queue="sales")),
        (CALLS, ev("answered", "t", at("10:00:05"), agent_id="a1")),
        (CALLS, ev("transferred", "t", at("10:01:05"), queue="billing")),
        (CALLS, ev("missed", "t", at("10:01:20"), agent_id="a2")),
        (CALLS, ev("dequeued", "t", at("10:02:05"), reason="empty")),
    ]
    p = run(events)
    assert p.dead == []
    sales, billing = p.store.view("sales", "voice", NOW), p.store.view("billing", "voice", NOW)
    # sales: answered in 5 s, handled 60 s and transferred out; nothing dequeued or missed there
    assert (
        sales.counters["handled"],
        sales.counters["transferred_out"],
        sum(sales.dequeued.values()),
        sales.missed,
    ) == (1, 1, 0, 0)
    assert kpis.service_level(sales.windows["15m"]) == 1.0
    # billing: waited from 10:01:05, missed by a2, dequeued after 60 s with reason empty
    assert billing.dequeued["empty"] == 1 and billing.missed == 1
    assert billing.wait_hist["dequeued"][-1] == pytest.approx(60.0)
    assert kpis.service_level(billing.windows["15m"]) == 0.0 and billing.waiting == 0


def test_lifecycle_rules_for_dequeued_and_missed():
    events = [
        (CALLS, ev("missed", "ghost", at("10:00:00"), agent_id="a1")),  # 0 unknown contact
        (CALLS, ev("dequeued", "ghost", at("10:00:00"), reason="timeout")),  # 1 unknown contact
        (CALLS, ev("offered", "m", at("10:00:00"), queue="q")),  # 2
        (CALLS, ev("answered", "m", at("10:00:10"), agent_id="a1")),  # 3
        (CALLS, ev("missed", "m", at("10:00:20"), agent_id="a2")),  # 4 not waiting any more
        (CALLS, ev("dequeued", "m", at("10:00:20"))),  # 5 not waiting any more
        (CALLS, ev("offered", "d", at("10:01:00"), queue="q")),  # 6
        (CALLS, ev("dequeued", "d", at("10:01:30"), reason="withdraw")),  # 7
        (CALLS, ev("missed", "d", at("10:01:40"), agent_id="a1")),  # 8 finished
        (CALLS, ev("answered", "d", at("10:01:40"), agent_id="a1")),  # 9 finished
        (CALLS, ev("abandoned", "d", at("10:01:40"))),  # 10 finished
        (CALLS, ev("dequeued", "d", at("10:01:40"))),  # 11 finished
        (CALLS, ev("transferred", "d", at("10:01:40"), queue="r")),  # 12 finished
        (CALLS, ev("survey", "d", at("10:01:40"), ces=7)),  # 13 never handled
        (CALLS, ev("offered", "o", at("10:02:00"), queue="q")),  # 14
        (CALLS, ev("missed", "o", at("10:01:59"), agent_id="a1")),  # 15 before offered
        (CALLS, ev("dequeued", "o", at("10:01:59"))),  # 16 before offered
        (CALLS, ev("offered", "a", at("10:03:00"), queue="q")),  # 17
        (CALLS, ev("abandoned", "a", at("10:03:30"))),  # 18
        (CALLS, ev("missed", "a", at("10:03:40"), agent_id="a1")),  # 19 abandoned
    ]
    p = run(events)
    assert [(d.reason, d.source.offset) for d in p.dead] == [
        ("lifecycle", o) for o in (0, 1, 4, 5, 8, 9, 10, 11, 12, 13, 15, 16, 19)
    ]
    assert all(d.detail for d in p.dead)
    v = p.store.view("q", "voice", NOW)
    assert v.dequeued["withdraw"] == 1 and sum(v.dequeued.values()) == 1 and v.missed == 0
    assert v.waiting == 1  # o still waits: its rejected events changed nothing
    assert ContactState.from_wire(p.lifecycle["c|voice|d"]).phase == "Q"


def test_duplicates_of_the_new_types_change_nothing():
    twice = SCENARIO + [(t, dict(e)) for t, e in SCENARIO if e["type"] in ("missed", "dequeued")]
    p = run(twice)
    assert p.results[(CALLS, "duplicate")] == 7 and p.dead == []
    assert run(SCENARIO).store.view("sales", "voice", NOW) == p.store.view("sales", "voice", NOW)
    assert run(SCENARIO).store.view("support", "voice", NOW) == p.store.view("support", "voice", NOW)


def test_late_dequeued_and_missed_update_totals_and_waiting_but_not_windows():
    # the watermark reaches 10:30:00; events more than 10 min behind it are late
    events = [
        (CALLS, ev("offered", "w", at("10:30:00"), queue="q")),
        (CALLS, ev("offered", "x", at("10:15:00"), queue="q")),  # late
        (CALLS, ev("missed", "x", at("10:15:10"), agent_id="a1")),  # late
        (CALLS, ev("dequeued", "x", at("10:19:59"), reason="timeout")),  # late
        (CALLS, ev("offered", "y", at("10:20:00"), queue="q")),  # exactly 600 s behind: in time
        (CALLS, ev("missed", "y", at("10:20:05"), agent_id="a1")),
        (CALLS, ev("dequeued", "y", at("10:21:00"))),
    ]
    now = at("10:30:05")
    p = run(events, now=now)
    assert p.results[(CALLS, "late")] == 3 and p.results[(CALLS, "accepted")] == 4
    v = p.store.view("q", "voice", now)
    assert v.dequeued["timeout"] == 1 and v.dequeued["other"] == 1 and v.missed == 2
    assert v.waiting == 1  # w; x left the queue although its events were late
    w = v.windows["15m"]
    assert (w[kpis.OFFERED], w[kpis.MISSED], w[kpis.DEQUEUED]) == (2, 1, 1)
    assert kpis.service_level(w) == 0.0  # 0 answered / (0 + 0 - 0 + 1 dequeued in the window)


SURVEYED = [
    # three handled chats in sales and one in support; surveys with and without ces
    *[
        e
        for cid, q in (("s1", "sales"), ("s2", "sales"), ("s3", "sales"), ("s4", "support"))
        for e in (
            (CHATS, ev("offered", cid, at("09:00:00"), queue=q)),
            (CHATS, ev("answered", cid, at("09:00:05"), agent_id="a1")),
            (CHATS, ev("ended", cid, at("09:01:00"))),
            (CHATS, ev("wrapup_ended", cid, at("09:01:10"))),
        )
    ],
    (CHATS, ev("survey", "s1", at("09:02:00"), ces=7, csat=5)),
    (CHATS, ev("survey", "s2", at("09:03:00"), ces=2)),
    (CHATS, ev("survey", "s3", at("09:04:00"), csat=4, nps=9, resolved=True)),  # no ces: not in the mean
    (CHATS, ev("survey", "s4", at("09:09:30"), ces=1)),
]


def test_ces_is_the_mean_of_the_answers_and_absent_without_any():
    now = at("09:10:00")
    p = run(SURVEYED, now=now)
    assert p.dead == []
    sales = p.store.view("sales", "chat", now).windows
    for window in ("15m", "1h", "today"):
        assert (sales[window][kpis.CES_N], sales[window][kpis.CES_SUM]) == (2, 9)
        assert kpis.ces(sales[window]) == pytest.approx(4.5)  # (7 + 2) / 2
        assert kpis.csat(sales[window]) == 1.0  # 5 and 4: both >= 4; CES does not disturb the others
    # 5m after 09:05:00: no sales survey left; support's ces 1 at 09:09:30 is in
    assert kpis.ces(sales["5m"]) is None
    assert kpis.ces(p.store.view("support", "chat", now).windows["5m"]) == 1.0
    m = samples(KpiExposition(lambda: p.store, lambda: now).render())
    sc = {"queue": "sales", "channel": "chat"}
    assert sample(m, "ccmon_ces_score", **sc, window="1h") == 4.5
    assert sample(m, "ccmon_ces_score", **sc, window="5m") is None  # absent, not 0 or NaN
    assert sample(m, "ccmon_ces_score", queue="support", channel="chat", window="today") == 1.0


def test_ces_survey_for_a_transferred_contact_counts_in_its_last_queue():
    events = [
        (CALLS, ev("offered", "t", at("09:00:00"), queue="sales")),
        (CALLS, ev("answered", "t", at("09:00:05"), agent_id="a1")),
        (CALLS, ev("transferred", "t", at("09:01:00"), queue="billing")),
        (CALLS, ev("answered", "t", at("09:01:10"), agent_id="a2")),
        (CALLS, ev("ended", "t", at("09:02:00"))),
        (CALLS, ev("survey", "t", at("09:03:00"), ces=3)),
    ]
    now = at("09:04:00")
    p = run(events, now=now)
    assert kpis.ces(p.store.view("billing", "voice", now).windows["5m"]) == 3.0
    assert kpis.ces(p.store.view("sales", "voice", now).windows["5m"]) is None


def test_exposition_of_dequeued_by_reason_missed_and_wait_outcome():
    p = run(SCENARIO)
    m = samples(KpiExposition(lambda: p.store, lambda: NOW).render())
    sv = {"queue": "sales", "channel": "voice"}
    # every reason of the fixed set is exported, 0 included, so sums and rules never miss a term
    assert {r: sample(m, "ccmon_contacts_dequeued_total", **sv, reason=r) for r in REASONS} == {
        "timeout": 1,
        "empty": 0,
        "key": 0,
        "withdraw": 0,
        "overflow": 0,
        "other": 2,
    }
    assert not [
        k for k in m if k[0] == "ccmon_contacts_dequeued_total" and dict(k[1])["reason"] not in REASONS
    ]
    assert sample(m, "ccmon_offers_missed_total", **sv) == 3
    assert sample(m, "ccmon_offers_missed_total", queue="support", channel="voice") == 0
    assert sample(m, "ccmon_wait_seconds_count", **sv, outcome="dequeued") == 3
    assert sample(m, "ccmon_wait_seconds_sum", **sv, outcome="dequeued") == 75.0
    assert sample(m, "ccmon_wait_seconds_bucket", **sv, outcome="dequeued", le="10.0") == 2
    assert sample(m, "ccmon_service_level_ratio", **sv, window="15m") == pytest.approx(1 / 6)
    assert sample(m, "ccmon_abandon_ratio", **sv, window="15m") == pytest.approx(1 / 3)
    assert sample(m, "ccmon_service_level_ratio", queue="support", channel="voice", window="today") == 0.0


def test_a_flood_of_made_up_dequeue_reasons_adds_no_series():
    events = []
    for i in range(200):
        events += [
            (CALLS, ev("offered", f"f{i}", at("10:00:00"), queue="q")),
            (CALLS, ev("dequeued", f"f{i}", at("10:00:01"), reason=f"made-up-{i}")),
        ]
    p = run(events)
    text = KpiExposition(lambda: p.store, lambda: NOW).render()
    assert text.count("ccmon_contacts_dequeued_total{") == len(REASONS)
    assert (
        sample(samples(text), "ccmon_contacts_dequeued_total", queue="q", channel="voice", reason="other")
        == 200
    )


def test_agent_name_and_reason_are_kept_compactly_in_the_agent_record():
    events = [
        (AGENTS, agent("a1", "available", ["sales"], at("10:00:00"))),
        (AGENTS, agent("a2", "available", ["sales"], at("10:00:00"), name="Ana Souza")),
        (AGENTS, agent("a2", "away", ["sales"], at("10:01:00"), reason="lunch")),  # name kept
        (AGENTS, agent("a2", "away", ["sales"], at("10:00:30"), name="Old", reason="x")),  # older: ignored
        (AGENTS, agent("a3", "offline", ["sales"], at("10:00:00"), name="Bo", reason="end of shift")),
        (AGENTS, agent("a3", "available", ["sales"], at("10:02:00"), name="Bo Li")),
    ]  # reason goes
    p = run(events)
    assert p.dead == []
    assert p.lifecycle["g|a1"].keys() == {"p", "s", "q", "t", "i"}  # neither: no extra keys
    a2 = AgentState.from_wire(p.lifecycle["g|a2"])
    assert (a2.state, a2.name, a2.reason) == ("away", "Ana Souza", "lunch")
    a3 = AgentState.from_wire(p.lifecycle["g|a3"])
    assert (a3.state, a3.name, a3.reason) == ("available", "Bo Li", None) and "r" not in p.lifecycle["g|a3"]
    assert dict(p.store.agents())["sales"] == {"available": 2, "busy": 0, "acw": 0, "away": 1, "offline": 0}
    # a bad name or reason dead-letters the event, and the agent's record keeps what it had
    p = run(events + [(AGENTS, agent("a2", "busy", ["sales"], at("10:03:00"), reason="lunch!"))])
    assert [d.reason for d in p.dead] == ["invalid_field"]
    assert AgentState.from_wire(p.lifecycle["g|a2"]).state == "away"


def test_records_of_a_worker_before_these_additions_are_read_and_extended():
    """State written before dequeued/missed/CES existed: shorter window vectors, totals without
    the new keys. The new worker reads them as zeros and counts on top of them."""
    p = run(SCENARIO[:2])
    for key, rec in p.queues.items():
        if key.startswith(("b|", "d|")):
            del rec["v"][15:]
        elif key.startswith("t|"):
            for k in ("wd", "dq", "ms", "fr"):
                del rec["v"][k]
    old = p.store.view("sales", "voice", NOW)
    assert old.dequeued == dict.fromkeys(REASONS, 0) and old.missed == 0
    assert kpis.service_level(old.windows["today"]) == 1.0
    p.feed([p.record(CALLS, e, key=e["contact_id"]) for _, e in SCENARIO[2:]], now=NOW)
    assert p.store.view("sales", "voice", NOW) == run(SCENARIO).store.view("sales", "voice", NOW)
