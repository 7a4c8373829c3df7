"""Every KPI of SPEC §2 through both stages, against values computed by hand in the comments."""

import pytest

from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import (
    AGENTS,
    CALLS,
    CHATS,
    NOW,
    SCENARIO,
    SCENARIO_SALES_COUNTERS,
    agent,
    at,
    ev,
    run,
    settings,
)


def test_totals_and_histograms_per_queue():
    p = run(SCENARIO)
    sales = p.store.view("sales", "voice", NOW)
    assert sales.counters == SCENARIO_SALES_COUNTERS
    # wait answered: 20 (le=20, inclusive) and 21 (le=30); abandoned 5 (le=5) and 4.999 (le=5)
    wa = sales.wait_hist["answered"]
    assert wa[3] == 1 and wa[4] == 1 and sum(wa[:-1]) == 2 and wa[-1] == pytest.approx(41.0)
    wb = sales.wait_hist["abandoned"]
    assert wb[0] == 2 and sum(wb[:-1]) == 2 and wb[-1] == pytest.approx(9.999)
    # handle: 330 (le=420) and 60 (le=60)
    hd = sales.handle_hist
    assert hd[1] == 1 and hd[6] == 1 and hd[-1] == pytest.approx(390.0)
    assert sales.waiting == 1 and sales.oldest_wait_s == pytest.approx(120.0)

    support = p.store.view("support", "voice", NOW)
    # c4 still in wrap-up (no wrapup_ended, timeout not reached): not handled yet
    assert support.counters == {
        "offered": 2,
        "answered": 1,
        "abandoned": 1,
        "short_abandoned": 0,
        "answered_in_threshold": 1,
        "handled": 0,
        "transferred_out": 0,
    }
    assert support.waiting == 0 and support.oldest_wait_s == 0.0


def test_windowed_ratios():
    from streams.core import kpis

    p = run(SCENARIO)
    w = p.store.view("sales", "voice", NOW).windows
    for name in ("15m", "1h", "today"):
        v = w[name]
        assert v[kpis.OFFERED] == 6
        assert kpis.abandon_ratio(v) == pytest.approx(1 / 3)  # (2-1) / (2+2-1)
        assert kpis.service_level(v) == pytest.approx(1 / 3)  # 1 / 3
        assert kpis.asa(v) == pytest.approx(20.5)  # (20 + 21) / 2
        assert kpis.aht(v) == pytest.approx(195.0)  # (330 + 60) / 2
    # 5m at 10:10:00 holds buckets after 10:05:00: c1's wrap-up (10:05:50) and c5's offer (10:08:00)
    v5 = w["5m"]
    assert v5[kpis.OFFERED] == 1
    assert kpis.aht(v5) == 330.0
    assert kpis.abandon_ratio(v5) is None and kpis.service_level(v5) is None and kpis.asa(v5) is None


def test_missing_wrapup_completes_at_ended_after_timeout():
    # c4 ended 10:06:31 in support; a later event at 10:16:32 moves the watermark past ended + 600 s
    events = SCENARIO + [(CALLS, ev("offered", "c9", at("10:16:32"), queue="billing"))]
    now = at("10:17:00")
    p = run(events, now=now, sweep=True)
    support = p.store.view("support", "voice", now)
    assert support.counters["handled"] == 1
    # handle = talk 120 s + ACW 0, counted at ended.ts 10:06:31 (inside the 15m window at 10:17:00)
    from streams.core import kpis

    assert support.handle_hist[-1] == pytest.approx(120.0)
    assert kpis.aht(support.windows["15m"]) == pytest.approx(120.0)
    # a wrap-up arriving after the timeout completion changes nothing
    p.feed([p.record(CALLS, ev("wrapup_ended", "c4", at("10:06:40")))], now=now)
    assert p.store.view("support", "voice", now).counters["handled"] == 1
    assert p.results.get((CALLS, "rejected"), 0) == 0


def test_timeout_not_reached_at_exactly_600s_and_wrapup_inside_counts_acw():
    base = [
        (CALLS, ev("offered", "k", at("09:00:00"), queue="q")),
        (CALLS, ev("answered", "k", at("09:00:10"), agent_id="a")),
        (CALLS, ev("ended", "k", at("09:01:10"))),
    ]
    # another contact moves the watermark to exactly ended + 600: not timed out yet
    p = run(
        base
        + [
            (CALLS, ev("offered", "x", at("09:11:10"), queue="q")),
            (CALLS, ev("wrapup_ended", "k", at("09:11:10"))),
        ],
        now=at("09:12:00"),
        sweep=True,
    )
    v = p.store.view("q", "voice", at("09:12:00"))
    assert v.counters["handled"] == 1
    assert v.handle_hist[-1] == pytest.approx(660.0)  # 60 s talk + 600 s ACW
    # a wrap-up 600.001 s after ended is past the timeout: ACW = 0, counted at ended
    p = run(base + [(CALLS, ev("wrapup_ended", "k", at("09:11:10.001")))], now=at("09:12:00"))
    assert p.store.view("q", "voice", at("09:12:00")).handle_hist[-1] == pytest.approx(60.0)


def test_a_late_ended_whose_timeout_is_already_due_is_still_counted_once():
    # a (10:00 ended) times out when the watermark passes 10:10; then b arrives late, ended at 09:01,
    # a deadline (09:11) earlier than one already fired: both count, each once, also on a replay
    a = [
        (CALLS, ev("offered", "a", at("09:59:00"), queue="q")),
        (CALLS, ev("answered", "a", at("09:59:30"), agent_id="x")),
        (CALLS, ev("ended", "a", at("10:00:00"))),
        (CALLS, ev("offered", "later", at("10:30:00"), queue="q")),
    ]
    b = [
        (CALLS, ev("offered", "b", at("09:00:00"), queue="q")),
        (CALLS, ev("answered", "b", at("09:00:10"), agent_id="y")),
        (CALLS, ev("ended", "b", at("09:01:10"))),
        (CALLS, ev("wrapup_ended", "b", at("09:01:30"))),
    ]
    p = LocalPipeline(settings())
    now = at("10:31:00")
    records = [p.record(topic, e, key=e["contact_id"]) for topic, e in a + b]
    p.feed(records[:4], now=now)
    p.sweep(now)
    p.feed(records[4:], now=now)
    p.sweep(now)
    v = p.store.view("q", "voice", now)
    assert v.counters["handled"] == 2
    # a: 30 s talk, ACW 0 at the timeout; b: its deadline had passed when its ended arrived, so
    # the timeout completes it (60 s talk, ACW 0) and the wrap-up after it changes nothing
    assert v.handle_hist[-1] == pytest.approx(30.0 + 60.0)
    p.feed(records, now=now)  # the same input again (a replay): nothing changes
    p.sweep(now)
    assert p.store.view("q", "voice", now).counters["handled"] == 2


def test_hold_never_resumed_closes_at_ended():
    from streams.core.lifecycle import ContactState

    events = [
        (CALLS, ev("offered", "h", at("09:00:00"), queue="q")),
        (CALLS, ev("answered", "h", at("09:00:05"), agent_id="a")),
        (CALLS, ev("hold", "h", at("09:01:00"))),
        (CALLS, ev("ended", "h", at("09:02:00"))),
        (CALLS, ev("wrapup_ended", "h", at("09:02:30"))),
    ]
    p = run(events, now=at("09:03:00"))
    state = ContactState.from_wire(p.lifecycle["c|voice|h"])
    assert state.hold_total == 60.0
    assert state.ended - state.answered - state.hold_total == 55.0  # talk = 115 - 60
    assert p.store.view("q", "voice", at("09:03:00")).handle_hist[-1] == pytest.approx(145.0)  # 55 + 60 + 30


def test_survey_hours_later_counts_for_last_segment_queue_at_survey_time():
    from streams.core import kpis

    events = SCENARIO + [
        (CALLS, ev("survey", "c1", at("13:00:00"), csat=5, nps=9, resolved=True)),
        (CALLS, ev("survey", "c4", at("13:00:30"), csat=3, nps=6)),  # c4's last segment: support
    ]
    now = at("13:01:00")
    p = run(events, now=now)
    sales = p.store.view("sales", "voice", now).windows["5m"]
    assert (kpis.csat(sales), kpis.nps(sales), kpis.fcr(sales)) == (1.0, 100.0, 1.0)
    support = p.store.view("support", "voice", now).windows["5m"]
    assert (kpis.csat(support), kpis.nps(support), kpis.fcr(support)) == (0.0, -100.0, None)


def test_nps_mix():
    from streams.core import kpis

    events = []
    for i, score in enumerate([10, 9, 8, 7, 6, 0]):  # 2 promoters, 2 passives, 2 detractors -> 0
        cid = f"n{i}"
        events += [
            (CHATS, ev("offered", cid, at("09:00:00"), queue="q")),
            (CHATS, ev("answered", cid, at("09:00:01"), agent_id="a")),
            (CHATS, ev("ended", cid, at("09:00:02"))),
            (CHATS, ev("survey", cid, at("09:00:03"), nps=score)),
        ]
    p = run(events, now=at("09:01:00"))
    v = p.store.view("q", "chat", at("09:01:00")).windows["5m"]
    assert kpis.nps(v) == 0.0 and kpis.csat(v) is None
    events.append((CHATS, ev("survey", "n0", at("09:00:04"), nps=10)))
    p = run(events, now=at("09:01:00"))
    assert p.results[(CHATS, "rejected")] == 1  # one survey per contact


def test_duplicates_change_nothing():
    dup = [(t, dict(e)) for t, e in SCENARIO]
    p = run(SCENARIO + dup)
    assert p.results[(CALLS, "duplicate")] == len(SCENARIO)
    assert p.store.view("sales", "voice", NOW).counters["offered"] == 6


def test_late_and_too_late_events():
    from streams.core import kpis

    # watermark reaches 10:30:00; an offer at 10:25:00 is late but within 10 min: windows count it;
    # an offer at 10:19:59 is more than 10 min behind: counted as late, totals only, no windows
    events = [
        (CALLS, ev("offered", "w", at("10:30:00"), queue="q")),
        (CALLS, ev("offered", "ok", at("10:25:00"), queue="q")),
        (CALLS, ev("offered", "tl", at("10:19:59"), queue="q")),
        (CALLS, ev("abandoned", "tl", at("10:19:59.500"))),
        (CALLS, ev("offered", "edge", at("10:20:00"), queue="q")),
    ]  # exactly 600 s behind: not late
    now = at("10:30:05")
    p = run(events, now=now)
    assert p.results[(CALLS, "accepted")] == 3 and p.results[(CALLS, "late")] == 2
    v = p.store.view("q", "voice", now)
    assert v.counters["offered"] == 4 and v.counters["abandoned"] == 1  # lifecycle and totals updated
    assert v.windows["15m"][kpis.OFFERED] == 3 and v.windows["15m"][kpis.ABANDONED] == 0
    assert v.waiting == 3  # "tl" left the queue even though its events were late


def test_out_of_order_within_a_contact_is_rejected():
    events = [
        (CALLS, ev("offered", "o", at("10:00:10"), queue="q")),
        (CALLS, ev("answered", "o", at("10:00:05"), agent_id="a")),
    ]
    p = run(events)
    assert [d.reason for d in p.dead] == ["lifecycle"]
    assert p.store.view("q", "voice", NOW).waiting == 1


def test_lifecycle_violations_go_to_dead_letter_with_source():
    events = [
        (CALLS, ev("answered", "ghost", at("10:00:00"), agent_id="a")),
        (CALLS, ev("offered", "c", at("10:00:00"), queue="q")),
        (CALLS, ev("offered", "c", at("10:00:01"), queue="q")),
        (CALLS, ev("resume", "c", at("10:00:02"))),
        (CALLS, ev("ended", "c", at("10:00:03"))),
    ]
    p = run(events)
    assert [(d.reason, d.source.offset) for d in p.dead] == [
        ("lifecycle", 0),
        ("lifecycle", 2),
        ("lifecycle", 3),
        ("lifecycle", 4),
    ]
    assert p.results[(CALLS, "accepted")] == 1


def test_agents_by_state_latest_event_wins():
    events = [
        (AGENTS, agent("a1", "available", ["sales", "support"], at("10:00:00"))),
        (AGENTS, agent("a2", "busy", ["sales"], at("10:00:00"))),
        (AGENTS, agent("a1", "acw", ["sales"], at("10:01:00"))),  # leaves support
        (AGENTS, agent("a2", "away", ["sales"], at("09:59:00"))),
    ]  # older: ignored
    p = run(events)
    assert dict(p.store.agents()) == {
        "sales": {"available": 0, "busy": 1, "acw": 1, "away": 0, "offline": 0},
        "support": {"available": 0, "busy": 0, "acw": 0, "away": 0, "offline": 0},
    }


def test_window_rolls_over_at_midnight_in_the_configured_zone():
    from streams.core import kpis

    # Europe/Berlin is UTC+1 in November: local midnight is 23:00 UTC
    events = [
        (CALLS, ev("offered", "y", at("22:59:50"), queue="q")),
        (CALLS, ev("offered", "t", at("23:00:00"), queue="q")),
    ]
    p = run(events, now=at("23:00:05"), timezone="Europe/Berlin")
    assert p.store.view("q", "voice", at("23:00:05")).windows["today"][kpis.OFFERED] == 1
    p = run(events, now=at("23:00:05"), timezone="UTC")
    assert p.store.view("q", "voice", at("23:00:05")).windows["today"][kpis.OFFERED] == 2
    # the rolling 5m window does not care about midnight
    assert p.store.view("q", "voice", at("23:00:05")).windows["5m"][kpis.OFFERED] == 2


def test_empty_windows_after_time_passes():
    from streams.core import kpis

    p = run(SCENARIO)
    later = at("11:30:00")
    w = p.store.view("sales", "voice", later).windows
    for name in ("5m", "15m", "1h"):
        assert w[name][kpis.OFFERED] == 0 and kpis.abandon_ratio(w[name]) is None
    assert w["today"][kpis.OFFERED] == 6


def test_rolling_window_edges_with_10s_buckets():
    from streams.core import kpis

    # 5m at 10:10:00 covers buckets starting after 10:05:00: 10:05:09.999 is out, 10:05:10 is in
    events = [
        (CALLS, ev("offered", "a", at("10:05:09.999"), queue="q")),
        (CALLS, ev("offered", "b", at("10:05:10"), queue="q")),
    ]
    p = run(events, now=at("10:10:00"))
    assert p.store.view("q", "voice", at("10:10:00")).windows["5m"][kpis.OFFERED] == 1
    assert p.store.view("q", "voice", at("10:10:09.9")).windows["5m"][kpis.OFFERED] == 1
    assert p.store.view("q", "voice", at("10:09:59.9")).windows["5m"][kpis.OFFERED] == 2


def test_per_queue_thresholds():
    from streams.config import QueueThresholds

    events = [
        (CALLS, ev("offered", "s", at("10:00:00"), queue="vip")),
        (CALLS, ev("answered", "s", at("10:00:10"), agent_id="a")),
    ]
    p = run(events, queues={"vip": QueueThresholds(sl_threshold_s=5, sl_target=0.9, short_abandon_s=2)})
    assert p.store.view("vip", "voice", NOW).counters["answered_in_threshold"] == 0


def test_agents_required_from_15m_window():
    # 100 contacts per 30 min equals 50 per 15 min; AHT 180 s -> A = 10 erlangs -> 14 agents
    events = []
    for i in range(50):
        t = at("10:00:00") + i * 10
        cid = f"r{i}"
        events += [
            (CALLS, ev("offered", cid, t, queue="q")),
            (CALLS, ev("answered", cid, t + 1, agent_id="a")),
            (CALLS, ev("ended", cid, t + 150)),
            (CALLS, ev("wrapup_ended", cid, t + 181)),
        ]
    p = run(events, now=at("10:12:00"))
    view = p.store.view("q", "voice", at("10:12:00"))
    assert view.windows["15m"][0] == 50
    assert view.agents_required == 14


def test_queue_cap_rejects_new_queues_beyond_limit():
    events = [(CALLS, ev("offered", f"q{i}", at("10:00:00"), queue=f"queue{i}")) for i in range(5)]
    events.append((AGENTS, agent("a", "available", ["queue0", "brand-new"], at("10:00:00"))))
    p = run(events, max_queues=3)
    assert [d.reason for d in p.dead] == ["queue_limit", "queue_limit", "queue_limit"]
    assert p.store.queues() == {"queue0", "queue1", "queue2"}


def test_retention_expires_contact_state_and_late_survey_after_it_is_rejected():
    events = [
        (CALLS, ev("offered", "r", at("10:00:00"), queue="q")),
        (CALLS, ev("abandoned", "r", at("10:00:30"))),
        (CALLS, ev("offered", "later", at("11:00:31"), queue="q")),
    ]
    p = run(events, now=at("11:01:00"), sweep=True, retention_s=3600)
    assert "c|voice|r" not in p.lifecycle and "c|voice|later" in p.lifecycle


def test_buckets_and_days_expire():
    p = run(SCENARIO)
    assert any(k.startswith("b|") for k in p.queues)
    gone, _ = p.store.expire(at("12:00:00", day="2026-11-25"))
    assert not any(k.startswith(("b|", "d|")) for k in p.queues) and gone
    # totals survive expiry
    assert p.store.view("sales", "voice", at("12:00:00", day="2026-11-25")).counters["offered"] == 6
