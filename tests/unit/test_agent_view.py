"""Per-agent figures (SPEC §2 "Per agent"), hand-computed, through both stages of the pure core."""

from streams.core.facts import Kind
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import AGENTS, CALLS, CHATS, agent, at, ev, settings


def feed(p: LocalPipeline, rows, now):
    return p.feed([p.record(topic, value) for topic, value in rows], now=now)


def row(p: LocalPipeline, agent_id: str, now: float):
    r = p.agent_store.row(agent_id, now)
    assert r is not None
    return r


def test_state_time_is_split_at_local_midnight_and_today_follows_the_time_zone():
    # Europe/Berlin is UTC+1 in November: local midnight of 24 Nov is 23:00 UTC on 23 Nov
    p = LocalPipeline(settings(timezone="Europe/Berlin"))
    feed(
        p,
        [
            (AGENTS, agent("a1", "available", ["sales"], at("22:30:00"), name="Ann Lee")),
            (AGENTS, agent("a1", "busy", ["sales"], at("23:10:00"))),
            (AGENTS, agent("a1", "away", ["sales"], at("23:25:00"), reason="lunch")),
        ],
        now=at("23:40:00"),
    )
    r = row(p, "a1", at("23:40:00"))
    assert (r.name, r.state, r.reason, r.since) == ("Ann Lee", "away", "lunch", at("23:25:00"))
    # today (24 Nov local): available 23:00-23:10 UTC, busy 23:10-23:25, away 23:25-now (15 min, running)
    assert r.state_s_today == {"available": 600.0, "busy": 900.0, "acw": 0.0, "away": 900.0, "offline": 0.0}
    assert r.occupancy_today == 900 / 2400
    # since the record began: available 40 min (30 of them yesterday, local)
    assert r.state_s_total == {"available": 2400.0, "busy": 900.0, "acw": 0.0, "away": 900.0, "offline": 0.0}
    # the same agent read an hour earlier (22:50 UTC, 23:50 local, still 23 Nov): 20 min available today
    early = LocalPipeline(settings(timezone="Europe/Berlin"))
    feed(early, [(AGENTS, agent("a1", "available", ["sales"], at("22:30:00")))], now=at("22:50:00"))
    assert row(early, "a1", at("22:50:00")).state_s_today["available"] == 1200.0


def test_an_agent_who_never_logs_out_counts_today_from_midnight_and_the_total_from_the_start():
    p = LocalPipeline(settings(timezone="America/New_York"))  # UTC-5 in November
    start = at("08:00:00", day="2026-11-21")
    feed(p, [(AGENTS, agent("a1", "available", ["q"], start))], now=start)
    now = at("15:00:00")  # 10:00 local on 23 Nov: today began at 05:00 UTC
    r = row(p, "a1", now)
    assert r.state_s_today["available"] == 10 * 3600
    assert r.state_s_total["available"] == now - start
    assert r.occupancy_today == 0.0 and r.handled_today == 0 and r.aht_today is None


def test_contact_in_hand_follows_its_phases_and_the_agent_serves_two_queues():
    p = LocalPipeline(settings())
    feed(
        p,
        [
            (AGENTS, agent("a1", "available", ["sales", "support"], at("10:00:00"))),
            (CALLS, ev("offered", "c1", at("10:00:00"), queue="sales")),
            (CALLS, ev("answered", "c1", at("10:00:10"), agent_id="a1")),
            (AGENTS, agent("a1", "busy", ["sales", "support"], at("10:00:10"))),
        ],
        now=at("10:00:20"),
    )
    r = row(p, "a1", at("10:00:20"))
    assert r.queues == ["sales", "support"]
    assert r.contacts == [
        {"id": "c1", "queue": "sales", "channel": "voice", "phase": "talking", "since": at("10:00:10")}
    ]
    feed(p, [(CALLS, ev("hold", "c1", at("10:01:00")))], now=at("10:01:05"))
    assert row(p, "a1", at("10:01:05")).contacts[0]["phase"] == "hold"
    feed(
        p,
        [
            (CALLS, ev("resume", "c1", at("10:01:30"))),
            (CALLS, ev("ended", "c1", at("10:02:10"))),
            (AGENTS, agent("a1", "acw", ["sales", "support"], at("10:02:10"))),
        ],
        now=at("10:02:20"),
    )
    r = row(p, "a1", at("10:02:20"))
    assert (r.contacts[0]["phase"], r.contacts[0]["since"]) == ("acw", at("10:02:10"))
    feed(
        p,
        [
            (CALLS, ev("wrapup_ended", "c1", at("10:02:40"))),
            (AGENTS, agent("a1", "available", ["sales", "support"], at("10:02:40"))),
            # a chat in the second queue, completed by the ACW timeout (600 s): ACW = 0
            (CHATS, ev("offered", "h1", at("10:03:00"), queue="support")),
            (CHATS, ev("answered", "h1", at("10:03:05"), agent_id="a1")),
            (CHATS, ev("ended", "h1", at("10:04:05"))),
            # a later chat moves the chats partition's time past h1's deadline
            (CHATS, ev("offered", "h9", at("10:20:00"), queue="sales")),
        ],
        now=at("10:20:00"),
    )
    p.sweep(at("10:20:00"))
    r = row(p, "a1", at("10:20:00"))
    assert r.contacts == []
    # c1: 10:00:10 → 10:02:40 = 150 s; h1: 10:03:05 → 10:04:05 = 60 s
    assert (r.handled_today, r.handle_s_today, r.aht_today) == (2, 210.0, 105.0)
    # available 10:00:00-10:00:10 and 10:02:40-10:20:00; busy 10:00:10-10:02:10; acw 10:02:10-10:02:40
    assert r.state_s_today["busy"] == 120 and r.state_s_today["acw"] == 30
    assert r.state_s_today["available"] == 10 + 1040
    assert r.occupancy_today == 150 / 1200
    assert dict(p.store.agents())["support"]["available"] == 1


def test_a_transfer_counts_for_the_agent_who_had_it_and_the_survey_only_for_the_last_queue():
    p = LocalPipeline(settings())
    feed(
        p,
        [
            (CALLS, ev("offered", "c1", at("09:00:00"), queue="sales")),
            (CALLS, ev("answered", "c1", at("09:00:05"), agent_id="a1")),
            (CALLS, ev("transferred", "c1", at("09:01:05"), queue="support")),
            (CALLS, ev("answered", "c1", at("09:01:25"), agent_id="a2")),
            (CALLS, ev("ended", "c1", at("09:03:25"))),
            (CALLS, ev("wrapup_ended", "c1", at("09:03:55"))),
            (CALLS, ev("survey", "c1", at("09:30:00"), csat=5, ces=6)),
        ],
        now=at("09:30:00"),
    )
    a1, a2 = row(p, "a1", at("09:30:00")), row(p, "a2", at("09:30:00"))
    assert (a1.handled_today, a1.handle_s_today, a1.contacts) == (1, 60.0, [])  # transfer: no ACW
    assert (a2.handled_today, a2.handle_s_today, a2.contacts) == (1, 150.0, [])
    assert a1.state is None  # known only from the contact it answered: no state event yet
    from streams.core import kpis

    support = p.store.view("support", "voice", at("09:30:00")).windows["today"]
    sales = p.store.view("sales", "voice", at("09:30:00")).windows["today"]
    assert (support[kpis.CSAT_N], support[kpis.CES_SUM], sales[kpis.CSAT_N]) == (1, 6, 0)


def test_a_missed_offer_counts_for_the_agent_who_missed_it():
    p = LocalPipeline(settings())
    feed(
        p,
        [
            (CALLS, ev("offered", "c1", at("09:00:00"), queue="sales")),
            (CALLS, ev("missed", "c1", at("09:00:10"), agent_id="a1")),
            (CALLS, ev("missed", "c1", at("09:00:20"), agent_id="a1")),
            (CALLS, ev("missed", "c1", at("09:00:30"), agent_id="a2")),
            (CALLS, ev("answered", "c1", at("09:00:40"), agent_id="a3")),
        ],
        now=at("09:01:00"),
    )
    assert [
        (r.agent, r.missed_today, r.missed_total, r.handled_today) for r in p.agent_store.rows(at("09:01:00"))
    ] == [("a1", 2, 2, 0), ("a2", 1, 1, 0), ("a3", 0, 0, 0)]
    assert row(p, "a3", at("09:01:00")).contacts[0]["id"] == "c1"


def test_per_agent_facts_are_routed_by_agent_and_queue_facts_by_queue():
    from streams.core.intake import partition_for_queue

    p = LocalPipeline(settings(partitions=8))
    out = feed(
        p,
        [
            (CALLS, ev("offered", "c1", at("09:00:00"), queue="sales")),
            (CALLS, ev("answered", "c1", at("09:00:05"), agent_id="agent-7")),
        ],
        now=at("09:00:10"),
    )
    for part, rows in out.facts.items():
        for _, _, _, fact in rows:
            key = fact[4] if fact[0].startswith("ag_") else fact[1]
            assert part == partition_for_queue(key, 8)
    kinds = [fact[0] for rows in out.facts.values() for *_, fact in rows]
    assert Kind.AG_CONTACT in kinds and kinds.count(Kind.ANSWERED) == 1


def test_a_flood_of_made_up_agent_ids_is_capped_and_dead_lettered():
    p = LocalPipeline(settings(max_agents=50))
    rows = [(AGENTS, agent(f"fake-{i}", "available", ["q"], at("09:00:00") + i)) for i in range(300)]
    rows.append((AGENTS, agent("fake-3", "busy", ["q"], at("09:10:00"))))  # a known agent goes on
    rows += [
        (CALLS, ev("offered", "c1", at("09:10:00"), queue="q")),
        (CALLS, ev("missed", "c1", at("09:10:01"), agent_id="stranger")),
        (CALLS, ev("answered", "c1", at("09:10:02"), agent_id="fake-9")),
    ]
    feed(p, rows, now=at("09:11:00"))
    reasons = [d.reason for d in p.dead]
    assert reasons == ["agent_limit"] * 251
    assert len(p.agent_store.agent_ids()) == 50 and len(p.intake.known_agents) == 50
    assert row(p, "fake-3", at("09:11:00")).state == "busy"
    assert row(p, "fake-9", at("09:11:00")).contacts[0]["id"] == "c1"
    assert p.dead[0].detail == "agent 'fake-50' would exceed the limit of 50 agents"


def test_agent_ids_are_forgotten_for_the_cap_a_retention_period_after_they_were_last_seen():
    p = LocalPipeline(settings(max_agents=2, retention_s=3600))
    feed(
        p,
        [
            (AGENTS, agent("old", "offline", ["q"], at("01:00:00"))),
            (AGENTS, agent("keeper", "available", ["q"], at("01:00:00"))),
        ],
        now=at("01:00:00"),
    )
    out = feed(p, [(AGENTS, agent("new", "available", ["q"], at("02:00:00")))], now=at("02:00:00"))
    assert [d.reason for d in out.dead] == ["agent_limit"]
    # the partition's time passes the end of old's last day (23 Nov, UTC) + the retention
    later = at("01:00:01", day="2026-11-24")
    feed(p, [(AGENTS, agent("keeper", "busy", ["q"], later))], now=later)
    p.sweep(later)
    assert set(p.intake.known_agents) == {"keeper"}
    out = feed(p, [(AGENTS, agent("new", "available", ["q"], later + 1))], now=later + 1)
    assert out.dead == [] and set(p.intake.known_agents) == {"keeper", "new"}
    # a restarted worker counts the same agents from its records
    from streams.core.intake import Intake

    assert Intake(p.lifecycle, p.settings.kpi).known_agents == p.intake.known_agents


def test_offline_agents_and_old_days_expire_from_the_agent_view():
    p = LocalPipeline(settings(retention_s=3600))
    feed(
        p,
        [
            (AGENTS, agent("a1", "available", ["q"], at("09:00:00"))),
            (AGENTS, agent("a1", "offline", ["q"], at("10:00:00"))),
            (AGENTS, agent("a2", "available", ["q"], at("09:00:00"))),
            (AGENTS, agent("a2", "busy", ["q"], at("09:30:00"))),
        ],
        now=at("10:00:00"),
    )
    assert p.agent_store.expire(at("11:00:01")) == ([], [])  # retention is event time: none has passed
    feed(p, [(AGENTS, agent("a2", "acw", ["q"], at("11:00:01")))], now=at("11:00:01"))
    gone, _ = p.agent_store.expire(at("11:00:01"))
    assert gone == ["p|a1"] and p.agent_store.agent_ids() == ["a2"]
    _, changed = p.agent_store.expire(at("09:00:00", day="2026-11-25"))
    assert changed == ["p|a2"] and p.agents["p|a2"]["v"]["d"] == {}


def test_api_agents_pages_by_offset_and_limit_in_agent_id_order():
    import pytest

    from streams.wallboard import agents as agent_view

    p = LocalPipeline(settings())
    now = at("09:01:00")
    feed(
        p,
        [(AGENTS, agent(f"a{i}", "available", ["sales"], at("09:00:00"))) for i in (3, 1, 4, 0, 2)],
        now=now,
    )
    whole = agent_view.snapshot(p.agent_store, p.settings, now, "all")
    assert [a["agent"] for a in whole["agents"]] == ["a0", "a1", "a2", "a3", "a4"]
    assert (whole["total"], whole["offset"], whole["limit"], whole["next_offset"]) == (5, 0, None, None)
    pages, offset = [], 0
    while offset is not None:
        page = agent_view.snapshot(p.agent_store, p.settings, now, "all", offset=offset, limit=2)
        pages.append([a["agent"] for a in page["agents"]])
        assert page["total"] == 5
        offset = page["next_offset"]
    assert pages == [["a0", "a1"], ["a2", "a3"], ["a4"]]
    assert agent_view.snapshot(p.agent_store, p.settings, now, "all", offset=9)["agents"] == []
    # only the worker's own agents count, as on the page
    mine = agent_view.snapshot(
        p.agent_store, p.settings, now, "share", owned=lambda a: a in ("a1", "a3"), limit=1
    )
    assert ([a["agent"] for a in mine["agents"]], mine["total"], mine["next_offset"]) == (["a1"], 2, 1)
    assert agent_view.page_params({}) == (0, None)
    assert agent_view.page_params({"offset": "10", "limit": "50"}) == (10, 50)
    assert agent_view.page_params({"offset": "", "limit": ""}) == (0, None)
    for bad in ({"offset": "-1"}, {"limit": "0"}, {"limit": "ten"}, {"offset": "²"}, {"limit": "1.5"}):
        with pytest.raises(ValueError, match="must be an integer"):
            agent_view.page_params(bad)


def test_an_agent_event_past_retention_meets_no_state_whether_a_sweep_ran_or_not():
    """An agent offline for longer than the retention (by the partition's watermark) who logs in
    again: with a sweep before it or without, the event meets no state, so it decides the same
    facts and leaves the same record (as stage 1 does for contacts: the sweep's timing must not
    show in any series)."""
    from streams.core.layout import agent_key

    results = []
    for sweep in (False, True):
        p = LocalPipeline(settings(retention_s=600.0))
        feed(
            p,
            [
                (AGENTS, agent("a1", "available", ["q"], at("10:00:00"))),
                (AGENTS, agent("a1", "offline", ["q"], at("10:05:00"))),
            ],
            now=at("10:05:00"),
        )
        feed(p, [(AGENTS, agent("a2", "available", ["q"], at("10:30:00")))], now=at("10:30:00"))
        if sweep:
            p.intake.sweep()  # stage 1's sweep alone: a1's record is past retention
        out = feed(
            p,
            [(AGENTS, agent("a1", "available", ["q"], at("10:30:05"), event_id="back"))],
            now=at("10:31:00"),
        )
        results.append((out.facts, p.lifecycle[agent_key("a1")]))
    assert results[0] == results[1]
