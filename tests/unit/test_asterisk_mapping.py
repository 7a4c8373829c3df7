"""queue_log -> ccmon events: every verb, the version shapes, hand-computed expected events.

The queue_logs here are written for these tests in the format app_queue.c writes
(``epoch|callid|queue|agent|VERB|data...``); ``E(...)`` lists the expected events by hand.
"""

from __future__ import annotations

import json

import pytest

from producers.sources.asterisk.mapping import Config, Mapper, Out
from producers.sources.asterisk.queue_log import LineIds, Malformed, epoch_of, parse
from producers.sources.events import check
from streams.core.events import parse_agent, parse_contact

SALES_AGENT = "PJSIP/400"


def run(
    log: str,
    config: Config | None = None,
    mapper: Mapper | None = None,
    ids: LineIds | None = None,
    release_at: float | None = None,
) -> tuple[list[Out], list[str | None], Mapper]:
    config = config or Config()
    m = mapper or Mapper(config)
    ids = ids or LineIds(config.source)
    out: list[Out] = []
    skipped: list[str | None] = []
    for text in log.strip().splitlines():
        text = text.strip()
        lid = ids.next(text, epoch_of(text))
        try:
            line = parse(text)
        except Malformed as exc:
            skipped.append(f"malformed: {exc.reason}")
            continue
        events, why = m.feed(line, lid)
        for ev in events:
            check(ev)  # every event the mapping builds passes the worker's own validation
        out += events
        skipped.append(why)
    if release_at is not None:
        out += [check(ev) for ev in m.release(release_at)]
    return out, skipped, m


def brief(out: list[Out]) -> list[tuple]:
    """(key, type or agent state, ts in s, the other fields but the customer) per event (the
    customer has its own test: test_the_caller_id_is_the_customer_unless_withheld)."""
    rows = []
    for o in out:
        ev = dict(o.event)
        ev.pop("event_id")
        ev.pop("customer", None)
        ts = ev.pop("ts") / 1000
        if o.stream == "agents":
            ev.pop("type"), ev.pop("agent_id")
            rows.append((o.key, ev.pop("state"), ts, ev))
        else:
            ev.pop("contact_id")
            rows.append((o.key, ev.pop("type"), ts, ev))
    return rows


def test_answered_call_13_and_later_with_a_missed_ring_and_acw_0():
    out, skipped, _ = run("""
        1700000000|NONE|NONE|NONE|QUEUESTART|
        1700000001|NONE|sales|PJSIP/400|ADDMEMBER|
        1700000010|1700000010.1|sales|NONE|ENTERQUEUE||5551234|1|Jane Doe
        1700000025|1700000010.1|sales|PJSIP/401|RINGNOANSWER|15000
        1700000032|1700000010.1|sales|PJSIP/400|CONNECT|22|1700000031.2|7
        1700000100|1700000010.1|sales|PJSIP/400|COMPLETEAGENT|22|68|1
    """)
    c = "1700000010.1@sales"
    assert brief(out) == [
        ("400", "available", 1700000001, {"queues": ["sales"]}),
        (c, "offered", 1700000010, {"queue": "sales"}),
        (c, "missed", 1700000025, {"agent_id": "401", "ring_ms": 15000}),
        (c, "answered", 1700000032, {"agent_id": "400"}),
        ("400", "busy", 1700000032, {"queues": ["sales"]}),
        (c, "ended", 1700000100, {"hangup": "agent"}),
        (c, "wrapup_ended", 1700000100, {}),
        ("400", "available", 1700000100, {"queues": ["sales"]}),
    ]
    assert skipped == [None] * 6


def test_every_event_is_valid_for_the_worker():
    """What the mapping writes passes the worker's own validation (SPEC §1)."""
    out, _, _ = run(FULL_LOG, Config(wrapup_s=5), release_at=1e10)
    assert {o.event["type"] for o in out} >= {
        "offered",
        "answered",
        "missed",
        "abandoned",
        "dequeued",
        "transferred",
        "hold",
        "resume",
        "ended",
        "wrapup_ended",
        "state",
    }
    for o in out:
        raw = json.dumps(o.event).encode()
        parse = parse_agent if o.stream == "agents" else parse_contact
        parsed = parse(raw, now=o.event["ts"] / 1000, future_tolerance_s=300)
        assert getattr(parsed, "event_id", None) == o.event["event_id"], (o.event, parsed)
    ids = [o.event["event_id"] for o in out]
    assert len(ids) == len(set(ids)), "event ids must be unique"


def test_configured_wrapup_ends_when_event_time_passes_it_on_a_later_line_or_by_release():
    log = """
        1000|c1|sales|NONE|ENTERQUEUE||555|1
        1004|c1|sales|SIP/400|CONNECT|4|c1b|2
        1100|c1|sales|SIP/400|COMPLETECALLER|4|96|1
        1120|c2|sales|NONE|ENTERQUEUE||556|1
        1131|c2|sales|NONE|ABANDON|1|1|11
    """
    config = Config(wrapup_s=10, wrapup_by_queue=(("sales", 30),))
    out, _, _ = run(log, config)
    rows = brief(out)
    assert rows[3:] == [
        ("c1@sales", "ended", 1100, {"hangup": "caller"}),
        ("400", "acw", 1100, {"queues": ["sales"]}),
        ("c2@sales", "offered", 1120, {"queue": "sales"}),
        ("c1@sales", "wrapup_ended", 1130, {}),  # due at 1130, released by the line at 1131, before it
        ("400", "available", 1130, {"queues": ["sales"]}),
        ("c2@sales", "abandoned", 1131, {}),
    ]
    # the same lines up to 1120 and then the wall clock passing 1130: the same events, same ids
    first, _, m = run("\n".join(log.strip().splitlines()[:4]), config)
    released = m.release(1130.0)
    by_line = {o.event["event_id"]: o.event for o in out}
    assert [o.event for o in released] == [by_line[o.event["event_id"]] for o in released]
    assert [o.event["type"] for o in released] == ["wrapup_ended", "state"]
    assert m.release(1200.0) == []


def test_a_pause_during_acw_or_a_call_waits_for_the_end_and_a_new_call_cancels_the_ready():
    out, _, _ = run(
        """
        1000|c1|sales|NONE|ENTERQUEUE||555|1
        1001|c1|sales|PJSIP/400|CONNECT|1|x|1
        1002|NONE|sales|PJSIP/400|PAUSE|Lunch break!
        1050|c1|sales|PJSIP/400|COMPLETECALLER|1|49|1
        1060|NONE|sales|PJSIP/400|UNPAUSE|
        1061|c2|sales|NONE|ENTERQUEUE||555|1
        1062|c2|sales|PJSIP/400|CONNECT|1|x|1
        1100|c2|sales|PJSIP/400|COMPLETEAGENT|1|38|1
        1200|c3|sales|NONE|ENTERQUEUE||555|1
    """,
        Config(wrapup_s=20),
    )
    states = [(r[1], r[2], r[3].get("reason")) for r in brief(out) if r[0] == "400"]
    assert states == [
        ("busy", 1001, None),  # the pause at 1002 starts when the call and its ACW are over...
        ("acw", 1050, None),  # ...but it was lifted at 1060, during the ACW: no away at all
        ("busy", 1062, None),  # a new call before the ACW's end (1070): that end no longer applies
        ("acw", 1100, None),
        ("available", 1120, None),  # released by the line at 1200
    ]


def test_abandon_and_every_dequeue_reason_and_turned_away_callers():
    out, skipped, _ = run("""
        10|a|q1|NONE|ENTERQUEUE||1|1
        14|a|q1|NONE|ABANDON|1|1|4
        20|b|q1|NONE|ENTERQUEUE||1|1
        80|b|q1|NONE|EXITWITHTIMEOUT|1|1|60
        20|c|q1|NONE|ENTERQUEUE||1|1
        21|c|q1|NONE|EXITEMPTY|1|1|1
        30|d|q1|NONE|ENTERQUEUE||1|1
        33|d|q1|NONE|EXITWITHKEY|5|1|1|3
        40|e|q1|NONE|ENTERQUEUE||1|1
        45|e|q1|NONE|WITHDRAW|1|1|5|callback requested
        50|f|q1|NONE|ENTERQUEUE||1|1
        52|f|q1|NONE|LEAVEEMPTY|1|1|2
        60|g|q1|NONE|FULL|
        61|h|q1|NONE|JOINEMPTY|
        70|i|q1|NONE|ABANDON|1|1|4
    """)
    rows = [(r[0], r[1], r[2], r[3].get("reason"), r[3].get("key")) for r in brief(out) if r[1] != "offered"]
    assert rows == [
        ("a@q1", "abandoned", 14, None, None),
        ("b@q1", "dequeued", 80, "timeout", None),
        ("c@q1", "dequeued", 21, "empty", None),
        ("d@q1", "dequeued", 33, "key", "5"),
        ("e@q1", "dequeued", 45, "withdraw", None),
        ("f@q1", "dequeued", 52, "empty", None),
        ("g@q1", "dequeued", 60, "overflow", None),
        ("h@q1", "dequeued", 61, "empty", None),
    ]
    assert [r[0] for r in brief(out) if r[1] == "offered"] == [
        "a@q1",
        "b@q1",
        "c@q1",
        "d@q1",
        "e@q1",
        "f@q1",
        "g@q1",
        "h@q1",
    ]
    assert skipped[-1] == "no waiting call for this line"


def test_old_version_shapes_12_connect_pre18_exit_and_18_transfer_without_next_queue():
    out, skipped, m = run("""
        100|c1|support|NONE|ENTERQUEUE||555
        106|c1|support|Agent/1001|CONNECT|6
        200|c1|support|Agent/1001|COMPLETECALLER|6|94
        300|c2|support|NONE|ENTERQUEUE||555
        360|c2|support|NONE|EXITWITHTIMEOUT|1
        400|c3|support|NONE|ENTERQUEUE||555|1
        410|c3|support|SIP/1002|CONNECT|10|c3b
        470|c3|support|SIP/1002|TRANSFER|2000|from-internal|10|60
        475|c4|support|NONE|ENTERQUEUE||555|1
        481|c4|support|NONE|ABANDON|1|1|6
    """)
    rows = [(r[0], r[1], r[2]) for r in brief(out)]
    assert rows == [
        ("c1@support", "offered", 100),
        ("c1@support", "answered", 106),
        ("1001", "busy", 106),
        ("c1@support", "ended", 200),
        ("c1@support", "wrapup_ended", 200),
        ("1001", "available", 200),
        ("c2@support", "offered", 300),
        ("c2@support", "dequeued", 360),
        ("c3@support", "offered", 400),
        ("c3@support", "answered", 410),
        ("1002", "busy", 410),
        ("1002", "available", 470),
        ("c4@support", "offered", 475),
        # the transfer's call entered no queue within 10 s: it ended at the transfer, as handled
        ("c3@support", "ended", 470),
        ("c3@support", "wrapup_ended", 470),
        ("c4@support", "abandoned", 481),
    ]
    assert all(s is None for s in skipped)


def test_transfers_into_a_second_queue_keep_the_contact_and_show_as_transferred():
    out, _, _ = run("""
        100|c1|sales|NONE|ENTERQUEUE||555|1
        105|c1|sales|PJSIP/400|CONNECT|5|x|1
        160|c1|sales|PJSIP/400|BLINDTRANSFER|support|from-queue|5|55|1
        161|c1|support|NONE|ENTERQUEUE||555|1
        170|c1|support|PJSIP/500|CONNECT|9|y|1
        200|c1|support|PJSIP/500|ATTENDEDTRANSFER|BRIDGE|abc-123|9|30|1
        201|c1|billing|NONE|ENTERQUEUE||555|1
        230|c1|billing|NONE|ABANDON|1|1|29
        300|c2|sales|NONE|ENTERQUEUE||555|1
        302|c2|sales|PJSIP/400|CONNECT|2|x|1
        340|c2|support|NONE|ENTERQUEUE||555|1
        340|c2|sales|PJSIP/400|ATTENDEDTRANSFER|APP|Queue|2|38|1
        350|c2|support|NONE|ABANDON|1|1|10
        400|c3|sales|NONE|ENTERQUEUE||555|1
        404|c3|sales|PJSIP/401|CONNECT|4|x|1
        460|c3|sales|PJSIP/401|ATTENDEDTRANSFER|LINK|PJSIP/401-0001|Local/6000@ctx-0002;1|4|56|1
        480|c4|sales|NONE|ENTERQUEUE||555|1
    """)
    calls = [(r[0], r[1], r[2], r[3].get("queue")) for r in brief(out) if "@" in r[0]]
    assert calls == [
        ("c1@sales", "offered", 100, "sales"),
        ("c1@sales", "answered", 105, None),
        ("c1@sales", "transferred", 160, "support"),  # at the transfer: sales' handle time ends there
        ("c1@sales", "answered", 170, None),
        ("c1@sales", "transferred", 200, "billing"),
        ("c1@sales", "abandoned", 230, None),
        ("c2@sales", "offered", 300, "sales"),
        ("c2@sales", "answered", 302, None),
        # ENTERQUEUE written before the transfer line: the transfer shows at the ENTERQUEUE
        ("c2@sales", "transferred", 340, "support"),
        ("c2@sales", "abandoned", 350, None),
        ("c3@sales", "offered", 400, "sales"),
        ("c3@sales", "answered", 404, None),
        # LINK form (an attended transfer to a phone): no queue follows within 10 s, ended as handled
        ("c3@sales", "ended", 460, None),
        ("c3@sales", "wrapup_ended", 460, None),
        ("c4@sales", "offered", 480, "sales"),
    ]
    agents = [(r[0], r[1], r[2]) for r in brief(out) if "@" not in r[0]]
    assert agents == [
        ("400", "busy", 105),
        ("400", "available", 160),
        ("500", "busy", 170),
        ("500", "available", 200),
        ("400", "busy", 302),
        ("400", "available", 340),
        ("401", "busy", 404),
        ("401", "available", 460),
    ]


def test_one_call_through_two_queues_and_back_is_three_segments():
    out, _, _ = run("""
        100|c1|sales|NONE|ENTERQUEUE||555|1
        130|c1|sales|NONE|EXITWITHTIMEOUT|1|1|30
        131|c1|overflow|NONE|ENTERQUEUE||555|1
        150|c1|overflow|NONE|EXITWITHKEY|1|1|1|19
        151|c1|sales|NONE|ENTERQUEUE||555|1
        160|c1|sales|NONE|ABANDON|1|1|9
    """)
    assert [(r[0], r[1]) for r in brief(out)] == [
        ("c1@sales", "offered"),
        ("c1@sales", "dequeued"),
        ("c1@overflow", "offered"),
        ("c1@overflow", "dequeued"),
        ("c1@sales#2", "offered"),
        ("c1@sales#2", "abandoned"),
    ]


def test_queuestart_closes_every_open_call_at_the_last_line_before_it():
    out, skipped, m = run("""
        100|w1|sales|NONE|ENTERQUEUE||555|1
        110|a1|sales|NONE|ENTERQUEUE||555|1
        112|a1|sales|PJSIP/400|CONNECT|2|x|1
        120|t1|sales|NONE|ENTERQUEUE||555|1
        121|t1|sales|PJSIP/401|CONNECT|1|x|1
        125|t1|sales|PJSIP/401|BLINDTRANSFER|9|ctx|1|4|1
        130|d1|sales|NONE|ENTERQUEUE||555|1
        131|d1|sales|NONE|ABANDON|1|1|1
        900|NONE|NONE|NONE|QUEUESTART|
        905|w1|sales|NONE|COMPLETECALLER|1|1|1
    """)
    tail = [(r[0], r[1], r[2], r[3].get("reason")) for r in brief(out)][-6:]
    assert tail == [
        # the transfer's 10 s without a next queue ran out before the restart line: ended as handled
        ("t1@sales", "ended", 125, None),
        ("t1@sales", "wrapup_ended", 125, None),
        ("w1@sales", "dequeued", 131, "restart"),  # at the last line Asterisk wrote before it restarted
        ("a1@sales", "ended", 131, None),
        ("a1@sales", "wrapup_ended", 131, None),
        ("400", "available", 900, None),  # the agent's call is gone: free from the restart on
    ]
    assert m.closed == {"restart": 2}
    assert skipped[-1] == "no answered call for this line"
    assert not any(
        s.phase in ("waiting", "answered", "transfer") for segs in m.calls.values() for s in segs.values()
    )


def test_a_missing_complete_is_closed_after_hours_without_a_line_at_its_last_known_time():
    out, _, m = run("""
        100|c1|sales|NONE|ENTERQUEUE||555|1
        105|c1|sales|PJSIP/400|CONNECT|5|x|1
        200|c2|sales|NONE|ENTERQUEUE||555|1
        205|c2|sales|NONE|ABANDON|1|1|5
        14600|c3|sales|NONE|ENTERQUEUE||555|1
    """)
    assert [(r[0], r[1], r[2]) for r in brief(out)][-4:] == [
        ("c2@sales", "abandoned", 205),
        ("c1@sales", "ended", 105),
        ("c1@sales", "wrapup_ended", 105),  # 4 h after its last line (105 + 14400)
        ("c3@sales", "offered", 14600),
    ]
    assert m.closed == {"lost": 1}


def test_agent_membership_pause_reasons_logins_and_names():
    out, skipped, _ = run("""
        100|NONE|sales|Local/2001@from-queue/n|ADDMEMBER|
        101|NONE|support|Local/2001@from-queue/n|ADDMEMBER|
        102|NONE|sales|PJSIP/400|ADDMEMBER|PAUSED
        110|NONE|NONE|Local/2001@from-queue/n|PAUSEALL|Lunch / break?
        120|NONE|NONE|Local/2001@from-queue/n|UNPAUSEALL|
        130|NONE|sales|PJSIP/400|UNPAUSE|
        140|NONE|sales|Local/2001@from-queue/n|REMOVEMEMBER|
        141|NONE|support|Local/2001@from-queue/n|REMOVEMEMBER|
        150|NONE|NONE|1001|AGENTLOGIN|PJSIP/1001-0000001
        160|NONE|NONE|1001|AGENTLOGOFF|PJSIP/1001-0000001|600
        170|NONE|sales|Alice Smith|PAUSE|training
    """)
    assert brief(out) == [
        ("2001", "available", 100, {"queues": ["sales"]}),
        ("2001", "available", 101, {"queues": ["sales", "support"]}),
        ("400", "away", 102, {"queues": ["sales"]}),
        ("2001", "away", 110, {"queues": ["sales", "support"], "reason": "Lunch _ break_"}),
        ("2001", "available", 120, {"queues": ["sales", "support"]}),
        ("400", "available", 130, {"queues": ["sales"]}),
        ("2001", "available", 140, {"queues": ["support"]}),
        ("2001", "offline", 141, {"queues": []}),
        ("1001", "available", 150, {"queues": []}),
        ("1001", "offline", 160, {"queues": []}),
        ("Alice Smith", "away", 170, {"queues": ["sales"], "reason": "training"}),
    ]
    assert all(s is None for s in skipped)


@pytest.mark.parametrize(
    "member, pattern, expected",
    [
        ("PJSIP/400", None, "400"),
        ("SIP/400", None, "400"),
        ("Local/2001@from-internal/n", None, "2001"),
        ("Agent/1001", None, "1001"),
        ("1001", None, "1001"),
        ("Alice Smith", None, "Alice Smith"),
        ("PJSIP/alice-desk", r"^PJSIP/(?P<id>[a-z]+)", "alice"),
        ("SIP/7001", r"SIP/7(\d+)", "001"),
    ],
)
def test_agent_names_are_normalised_and_configurable(member, pattern, expected):
    config = Config(agent_pattern=pattern) if pattern else Config()
    assert Mapper(config).agent_id(member) == expected


def test_hold_and_resume_from_the_dialplans_queuelog_lines():
    out, skipped, _ = run("""
        100|c1|sales|NONE|ENTERQUEUE||555|1
        105|c1|sales|PJSIP/400|CONNECT|5|x|1
        110|c1|sales|PJSIP/400|CALLERONHOLD|
        130|c1|sales|PJSIP/400|CALLEROFFHOLD|20
        131|c1|sales|PJSIP/400|CALLEROFFHOLD|
        140|c1|sales|PJSIP/400|CALLERONHOLD|
        150|c1|sales|PJSIP/400|COMPLETEAGENT|5|45|1
    """)
    assert [(r[1], r[2]) for r in brief(out) if r[0] == "c1@sales"] == [
        ("offered", 100),
        ("answered", 105),
        ("hold", 110),
        ("resume", 130),
        ("hold", 140),
        ("ended", 150),
        ("wrapup_ended", 150),
    ]  # the open hold closes at ended (SPEC)
    assert skipped[4] == "no answered call in that hold state"


def test_informational_unknown_and_malformed_lines_are_counted_never_fatal():
    out, skipped, _ = run("""
        100|c1|NONE|NONE|DID|5551000
        100|c1|sales|NONE|ENTERQUEUE||555|1
        101|c1|sales|NONE|INFO|some|thing
        102|c1|sales|PJSIP/400|RINGCANCELED|800
        103|NONE|NONE|NONE|CONFIGRELOAD|
        104|NONE|sales|NONE|CLOSED|
        105|c1|sales|PJSIP/400|WRAPUPSTART|30
        106|c1|sales|NONE|SYSCOMPAT|
        not a queue_log line
        12x|c1|sales|NONE|ABANDON|1|1|1
        107|c1|sales|NONE|abandon|1|1|1
        108|c1|sales|NONE|ABANDON|1|1|8
    """)
    assert [(r[1], r[2]) for r in brief(out)] == [("offered", 100), ("abandoned", 108)]
    assert skipped == [
        "DID: no event by design",
        None,
        "INFO: no event by design",
        "RINGCANCELED: no event by design",
        "CONFIGRELOAD: no event by design",
        "CLOSED: no event by design",
        "WRAPUPSTART: no event by design",
        "unknown verb",
        "malformed: fewer than 5 columns",
        "malformed: time is not an integer epoch",
        "malformed: no verb in the 5th column",
        None,
    ]


def test_line_ids_depend_on_content_and_place_not_on_a_counter():
    a = LineIds("asterisk")
    first = [
        a.next(t, epoch_of(t))
        for t in ("5|NONE|NONE|x|PAUSEALL|", "5|NONE|NONE|x|PAUSEALL|", "6|NONE|NONE|x|PAUSEALL|")
    ]
    assert len(set(first)) == 3  # identical lines in one second are told apart by their occurrence
    b = LineIds("asterisk")
    assert b.next("6|NONE|NONE|x|PAUSEALL|", 6.0) == first[2]  # a re-read from a second boundary
    assert LineIds("pbx2").next("6|NONE|NONE|x|PAUSEALL|", 6.0) != first[2]  # another server
    # a line written a second out of order is still told apart from its twin of that second
    assert a.next("5|NONE|NONE|x|PAUSEALL|", 5.0) not in first


def test_a_restart_from_saved_state_gives_exactly_the_events_of_one_uninterrupted_run():
    lines = FULL_LOG.strip().splitlines()
    config = Config(wrapup_s=15, wrapup_by_queue=(("support", 0),))
    whole, _, _ = run(FULL_LOG, config, release_at=1e10)
    for cut in range(1, len(lines)):
        head, _, m1 = run("\n".join(lines[:cut]), config, ids=(ids := LineIds("asterisk")))
        state = json.loads(json.dumps({"m": m1.to_state(), "i": ids.to_state()}))
        m2 = Mapper(config, state["m"])
        rest, _, _ = run(
            "\n".join(lines[cut:]),
            config,
            mapper=m2,
            ids=LineIds.from_state("asterisk", state["i"]),
            release_at=1e10,
        )
        assert [o.event for o in head + rest] == [o.event for o in whole], f"cut after line {cut}"


def test_a_duplicate_re_read_gives_the_same_ids():
    first, _, _ = run(FULL_LOG, release_at=1e10)
    again, _, _ = run(FULL_LOG, release_at=1e10)
    assert [o.event for o in first] == [o.event for o in again]


FULL_LOG = """
1700000000|NONE|NONE|NONE|QUEUESTART|
1700000001|NONE|sales|PJSIP/400|ADDMEMBER|
1700000001|NONE|support|PJSIP/500|ADDMEMBER|
1700000002|NONE|sales|PJSIP/401|ADDMEMBER|
1700000005|1700000005.1|sales|NONE|ENTERQUEUE||5551|1
1700000006|1700000006.2|sales|NONE|ENTERQUEUE||5552|2
1700000015|1700000005.1|sales|PJSIP/401|RINGNOANSWER|9000
1700000016|1700000005.1|sales|PJSIP/400|CONNECT|11|1700000015.3|1
1700000020|1700000006.2|sales|NONE|ABANDON|1|2|14
1700000030|NONE|sales|PJSIP/401|PAUSE|Training
1700000040|1700000040.4|support|NONE|ENTERQUEUE||5553|1
1700000045|1700000040.4|support|PJSIP/500|CONNECT|5|1700000044.5|1
1700000060|1700000005.1|sales|PJSIP/400|BLINDTRANSFER|support|from-queue|11|44|1
1700000061|1700000005.1|support|NONE|ENTERQUEUE||5551|1
1700000070|1700000040.4|support|PJSIP/500|CALLERONHOLD|
1700000080|1700000040.4|support|PJSIP/500|CALLEROFFHOLD|
1700000090|1700000040.4|support|PJSIP/500|COMPLETECALLER|5|45|1
1700000095|1700000005.1|support|PJSIP/500|CONNECT|34|1700000094.6|1
1700000100|1700000100.7|sales|NONE|ENTERQUEUE||5554|1
1700000130|1700000100.7|sales|NONE|EXITWITHTIMEOUT|1|1|30
1700000131|1700000131.8|sales|NONE|ENTERQUEUE||5555|1
1700000135|1700000131.8|sales|NONE|EXITWITHKEY|9|1|1|4
1700000140|NONE|sales|PJSIP/401|UNPAUSE|
1700000200|1700000005.1|support|PJSIP/500|COMPLETEAGENT|34|105|1
1700000300|1700000300.9|sales|NONE|ENTERQUEUE||5556|1
1700000400|NONE|NONE|NONE|QUEUESTART|
1700000401|1700000401.1|sales|NONE|ENTERQUEUE||5557|1
1700000401|1700000401.1|sales|NONE|ENTERQUEUE||5557|1
garbage|line
1700000410|1700000401.1|sales|NONE|WITHDRAW|1|1|9|
"""


STORY = {  # one call told by three Asterisk generations: answered after a missed ring, transferred, completed
    "1.8": """
        100|c1|sales|NONE|ENTERQUEUE||5551234
        110|c1|sales|SIP/400|RINGNOANSWER|10000
        115|c1|sales|SIP/401|CONNECT|15|1700.2|5
        160|c1|sales|SIP/401|TRANSFER|s|support-queue|15|45
        160|c1|support|NONE|ENTERQUEUE||5551234
        170|c1|support|SIP/500|CONNECT|10|1700.3|3
        230|c1|support|SIP/500|COMPLETECALLER|10|60|1
    """,
    "11": """
        100|c1|sales|NONE|ENTERQUEUE||5551234|1
        110|c1|sales|SIP/400|RINGNOANSWER|10000
        115|c1|sales|SIP/401|CONNECT|15|1700.2|5
        160|c1|sales|SIP/401|TRANSFER|s|support-queue|15|45|1
        160|c1|support|NONE|ENTERQUEUE||5551234|1
        170|c1|support|SIP/500|CONNECT|10|1700.3|3
        230|c1|support|SIP/500|COMPLETECALLER|10|60|1
    """,
    "13+": """
        100|c1|sales|NONE|ENTERQUEUE||5551234|1|Jane
        110|c1|sales|PJSIP/400|RINGNOANSWER|10000
        115|c1|sales|PJSIP/401|CONNECT|15|1700.2|5
        160|c1|sales|PJSIP/401|BLINDTRANSFER|s|support-queue|15|45|1
        160|c1|support|NONE|ENTERQUEUE||5551234|1|Jane
        170|c1|support|PJSIP/500|CONNECT|10|1700.3|3
        230|c1|support|PJSIP/500|COMPLETECALLER|10|60|1
    """,
}


@pytest.mark.parametrize("version", sorted(STORY))
def test_the_three_version_shapes_map_to_the_same_events(version):
    out, skipped, _ = run(STORY[version])
    assert brief(out) == [
        ("c1@sales", "offered", 100, {"queue": "sales"}),
        ("c1@sales", "missed", 110, {"agent_id": "400", "ring_ms": 10000}),
        ("c1@sales", "answered", 115, {"agent_id": "401"}),
        ("401", "busy", 115, {"queues": ["sales"]}),
        ("401", "available", 160, {"queues": ["sales"]}),
        ("c1@sales", "transferred", 160, {"queue": "support"}),
        ("c1@sales", "answered", 170, {"agent_id": "500"}),
        ("500", "busy", 170, {"queues": ["support"]}),
        ("c1@sales", "ended", 230, {"hangup": "caller"}),
        ("c1@sales", "wrapup_ended", 230, {}),
        ("500", "available", 230, {"queues": ["support"]}),
    ]
    assert skipped == [None] * 7


def test_a_queue_name_ccmon_cannot_carry_is_monitored_under_a_safe_label():
    out, skipped, _ = run("""
        100|c1|Sales Team|NONE|ENTERQUEUE||555|1
        101|NONE|Sales Team|PJSIP/400|ADDMEMBER|
        105|c1|Sales Team|PJSIP/400|CONNECT|5|x|1
        106|c2|NONE|NONE|ENTERQUEUE||555|1
    """)
    assert [(r[0], r[1], r[3]) for r in brief(out)][:3] == [
        ("c1@Sales_Team", "offered", {"queue": "Sales_Team"}),
        ("400", "available", {"queues": ["Sales_Team"]}),
        ("c1@Sales_Team", "answered", {"agent_id": "400"}),
    ]
    assert skipped[-1] == "no callid or no queue"


def test_a_transfer_back_into_the_same_queue_is_a_transfer_not_a_lost_line():
    out, _, m = run("""
        100|c1|sales|NONE|ENTERQUEUE||555|1
        105|c1|sales|PJSIP/400|CONNECT|5|x|1
        160|c1|sales|PJSIP/400|BLINDTRANSFER|sales|from-queue|5|55|1
        161|c1|sales|NONE|ENTERQUEUE||555|1
        170|c1|sales|PJSIP/401|CONNECT|9|y|1
        200|c1|sales|PJSIP/401|COMPLETEAGENT|9|30|1
    """)
    assert [(r[0], r[1], r[2], r[3].get("queue")) for r in brief(out) if "@" in r[0]] == [
        ("c1@sales", "offered", 100, "sales"),
        ("c1@sales", "answered", 105, None),
        ("c1@sales", "transferred", 160, "sales"),
        ("c1@sales", "answered", 170, None),
        ("c1@sales", "ended", 200, None),
        ("c1@sales", "wrapup_ended", 200, None),
    ]
    assert m.closed == {}


@pytest.mark.parametrize(
    "callerid, customer",
    [
        ("5551234", "5551234"),
        ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
        ("", None),
        ("anonymous", None),
        ("Anonymous", None),
        ("withheld", None),
        ("unknown", None),
        ("x" * 129, None),
    ],
)
def test_the_caller_id_is_the_customer_unless_withheld(callerid: str, customer: str | None):
    out, _, _ = run(f"1700000010|c1|sales|NONE|ENTERQUEUE||{callerid}|1")
    (offered,) = out
    assert offered.event.get("customer") == customer
    check(offered)  # the worker's own validation accepts it
