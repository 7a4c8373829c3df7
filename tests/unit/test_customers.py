"""The customer behind the contacts (SPEC §2 "The customer"), hand-computed: repeat contacts,
abandon recovery, operational FCR, resolution time, customers at risk. One facts partition, so
that every customer fact moves the one customer clock; R = 24 h, W = 60 min, lateness 10 min
(decisions wait for the clock less the lateness to pass their deadline)."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from streams.core.customers import customer_hash
from streams.core.intake import Intake
from streams.core.layout import encode_facts
from streams.core.queues import SeriesView
from streams.dev.local_pipeline import LocalPipeline
from streams.wallboard import callbacks
from tests.unit.helpers import CALLS, CHATS, at, ev, settings

KEY = b"a-test-key-of-32-bytes-for-hmac!"
ALICE, BOB, CAROL = "+4930111", "+4930222", "+4930333"


def pipeline(**cfg: Any) -> LocalPipeline:
    return LocalPipeline(settings(customer_key=KEY, partitions=1, **cfg))


def feed(p: LocalPipeline, rows: list[tuple[str, dict[str, Any]]], now: float | None = None) -> None:
    last = max(e["ts"] for _, e in rows) / 1000
    p.feed([p.record(t, e, key=e["contact_id"]) for t, e in rows], now=now if now is not None else last + 1)


def view(p: LocalPipeline, queue: str, channel: str = "voice", now: float | None = None) -> SeriesView:
    return p.store.view(queue, channel, now if now is not None else at("12:00:00"))


def call(cid: str, who: str | None, queue: str, t0: str, outcome: str, t1: str, **extra: Any) -> list:
    """A voice contact offered at t0 that is abandoned at t1, or answered at t1 and handled (ended
    a minute later, wrap-up right after)."""
    topic = extra.pop("topic", CALLS)
    fields = {"customer": who} if who is not None else {}
    rows = [(topic, ev("offered", cid, at(t0), queue=queue, **fields, **extra))]
    if outcome == "abandoned":
        rows.append((topic, ev("abandoned", cid, at(t1))))
    else:
        rows.append((topic, ev("answered", cid, at(t1), agent_id="a1")))
        rows.append((topic, ev("ended", cid, at(t1) + 60)))
        rows.append((topic, ev("wrapup_ended", cid, at(t1) + 61)))
    return rows


def tick(t: str, topic: str = CALLS) -> list:
    """A contact of another customer: moves ``topic``'s watermark, and so the customer clock
    when the other topic's is later, to ``t``."""
    return [(topic, ev("offered", f"tick-{topic}-{t}", at(t), queue="other", customer=f"ticker-{t}"))]


def test_abandon_then_answered_on_another_queue_is_recovered_and_a_repeat():
    p = pipeline()
    feed(p, call("c1", ALICE, "sales", "10:00:00", "abandoned", "10:01:00"))
    assert view(p, "sales").unrecovered == 1
    assert view(p, "sales", now=at("10:11:00")).unrecovered_oldest_s == 600.0  # since 10:01
    feed(p, call("c2", ALICE, "support", "10:20:00", "answered", "10:20:30"))
    sales, support = view(p, "sales"), view(p, "support")
    assert (sales.recovered, sales.lost, sales.unrecovered) == (1, 0, 0)
    assert support.repeat == {"handled": 0, "abandoned": 1, "dequeued": 0, "other": 0}
    assert p.store.callbacks() == []
    # windows: recovered counts at the answer (10:20:30), in sales' day
    assert sales.windows["today"][21:24] == [0, 1, 0]


def test_two_abandons_then_giving_up_is_lost_twice_and_at_risk():
    p = pipeline()
    feed(p, call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:30"))
    feed(p, call("c2", BOB, "sales", "10:05:00", "abandoned", "10:05:40"))
    assert view(p, "sales").repeat["abandoned"] == 1
    rows = p.store.callbacks()
    assert [(r[0], r[2], r[3][0], r[3][1]) for r in rows] == [
        ("sales", "c1", at("10:00:30"), 30.0),
        ("sales", "c2", at("10:05:40"), 40.0),
    ]
    assert rows[0][3][2] == customer_hash(KEY, BOB) and rows[0][3][3] is None  # no number in clear
    assert p.store.at_risk("sales") == 0  # one repeat only, nothing lost yet
    feed(p, tick("11:10:31"))  # clock − lateness = 11:00:31: c1's W (11:00:30) has passed, not c2's
    assert (view(p, "sales").lost, view(p, "sales").unrecovered) == (1, 1)
    assert p.store.at_risk("sales") == 1  # a lost abandon
    feed(p, tick("11:15:41"))
    sales = view(p, "sales")
    assert (sales.recovered, sales.lost, sales.unrecovered) == (0, 2, 0)
    assert p.store.at_risk("sales") == 1  # one customer, counted once


def test_a_withheld_number_has_no_customer_features():
    p = pipeline()
    feed(p, call("c1", None, "sales", "10:00:00", "abandoned", "10:00:30"))
    feed(p, call("c2", None, "sales", "10:05:00", "answered", "10:05:10"))
    sales = view(p, "sales")
    assert (sales.unrecovered, sales.customers, sales.recovered, sum(sales.repeat.values())) == (
        None,
        False,
        0,
        0,
    )
    assert sales.counters["offered"] == 2
    assert [k for k in p.customers if k[0] != "n"] == []  # only the customer clock of the partition


def test_repeats_across_midnight_and_channels_and_operational_fcr():
    p = pipeline()
    feed(p, call("c1", CAROL, "sales", "23:50:00", "answered", "23:50:10"))
    day2 = "2026-11-24"
    rows = [
        (CHATS, ev("offered", "c2", at("00:30:00", day2), queue="sales", customer=CAROL)),
        (CHATS, ev("answered", "c2", at("00:31:00", day2), agent_id="a2")),
        (CHATS, ev("ended", "c2", at("00:40:00", day2))),
        (CHATS, ev("wrapup_ended", "c2", at("00:40:01", day2))),
    ]
    feed(p, rows)
    chat = p.store.view("sales", "chat", at("00:45:00", day2))
    assert chat.repeat["handled"] == 1  # c1 was handled before midnight, on voice
    # c1 is decided at 23:50 + R (+ lateness): not resolved on first contact (c2 came within R)
    feed(p, [(CALLS, ev("offered", "t1", at("00:00:01", "2026-11-25"), queue="other", customer="x"))])
    voice = p.store.view("sales", "voice", at("00:01:00", "2026-11-25"))
    assert (voice.fcr_decided, voice.fcr_resolved) == (1, 0)
    # c2 is decided at 00:30 + R: no contact since: resolved on first contact
    feed(p, [(CALLS, ev("offered", "t2", at("00:41:00", "2026-11-25"), queue="other", customer="y"))])
    chat = p.store.view("sales", "chat", at("00:42:00", "2026-11-25"))
    assert (chat.fcr_decided, chat.fcr_resolved) == (1, 1)
    # the customer clock at 00:41 the day after: Carol's contacts and cases are past R; what is
    # left is her repeat's at-risk signal, kept 7 days (one repeat: not at risk)
    carol = p.customers["u|" + customer_hash(KEY, CAROL)]["v"]
    assert (carol["o"], carol["a"], carol["k"], carol["r"]) == ({}, {}, {}, None)
    assert carol["s"] == [[int(at("00:30:00", day2) * 1000), "R", "sales"]]
    feed(p, [(CALLS, ev("offered", "t3", at("00:41:00", "2026-12-01"), queue="other", customer="z"))])
    assert "u|" + customer_hash(KEY, CAROL) not in p.customers  # 7 days on: nothing of her is left


def test_resolution_time_with_a_late_resolved_and_contacts_per_case():
    p = pipeline()
    feed(p, call("c1", ALICE, "sales", "10:00:00", "answered", "10:00:20", case_id="T-1"))
    feed(p, call("c2", ALICE, "support", "10:30:00", "answered", "10:30:20", case_id="T-1"))
    feed(p, call("c3", ALICE, "support", "10:40:00", "answered", "10:40:20"))
    # resolved at 10:45, arriving after an event of 10:50 (late, within the lateness)
    feed(p, tick("10:50:00"))
    feed(p, [(CALLS, ev("resolved", "c2", at("10:45:00")))])
    # late: released just after the watermark it came behind (10:50), so applied once the
    # watermark moves on (every fact in the order of release, whichever came first)
    assert view(p, "support").resolution_hist[-1] == 0
    feed(p, tick("10:50:01"))
    support = view(p, "support")
    assert support.resolution_hist[-1] == 2700.0  # whole seconds, 10:00 (the case's first offered) → 10:45
    assert support.case_contacts_hist[-1] == 2.0  # two contacts of T-1
    assert support.windows["today"][26:28] == [1, 2700.0]
    feed(p, [(CALLS, ev("resolved", "c2", at("10:46:00")))])  # a second resolved changes nothing
    assert view(p, "support").resolution_hist[-1] == 2700.0


def test_the_same_customer_on_two_topics_at_once_and_duplicates():
    p = pipeline()
    both = [
        (CALLS, ev("offered", "v1", at("10:00:00"), queue="sales", customer=ALICE)),
        (CHATS, ev("offered", "h1", at("10:00:00"), queue="sales", customer=ALICE)),
    ]
    feed(p, both)
    assert sum(view(p, "sales").repeat.values()) == 0  # neither is earlier than the other
    feed(p, [(CHATS, ev("abandoned", "h1", at("10:00:20")))])
    feed(p, [(CALLS, ev("answered", "v1", at("10:00:30"), agent_id="a1"))])
    chat = p.store.view("sales", "chat", at("10:01:00"))
    # the answer waits for the chats' watermark to reach it: the customer clock is the lower one
    assert (chat.recovered, chat.unrecovered) == (0, 1)
    feed(p, tick("10:00:30", CHATS))
    chat = p.store.view("sales", "chat", at("10:01:00"))
    assert (chat.recovered, chat.unrecovered) == (1, 0)  # the call answered: the chat is recovered


def test_duplicated_facts_and_a_restart_change_nothing():
    """Stage 1 replaying a batch sends its facts again (new offsets, the same ids): the customer
    records' marks skip them. A restart rebuilds the heaps from the records: the rest of the day
    gives what an uninterrupted run gives."""
    first = [
        *call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:30"),
        *call("c2", ALICE, "sales", "10:01:00", "answered", "10:01:10"),
    ]
    later = [*call("c3", BOB, "support", "10:30:00", "answered", "10:30:05"), *tick("12:00:00")]
    straight = pipeline()
    feed(straight, first)
    feed(straight, later)

    p = pipeline()
    records = [p.record(t, e, key=e["contact_id"]) for t, e in first]
    p.feed(records, now=at("10:02:00"))
    # what a stage 1 that lost its state sends again for the same input: the same fact ids
    replayed = Intake({}, p.settings.kpi).process(records, now=at("10:02:00"))

    def state() -> tuple:  # the clock's time, not the offset of the last message it read
        return {k: v["w"] if k[0] == "n" else v for k, v in p.customers.items()}, p.queues

    before = copy.deepcopy(state())
    for part, rows in replayed.facts.items():
        p.apply_facts(part, encode_facts(rows), at("10:02:00"))
    assert state() == before
    restarted = pipeline()
    restarted.lifecycle.update(copy.deepcopy(p.lifecycle))
    restarted.queues.update(copy.deepcopy(p.queues))
    restarted.customers.update(copy.deepcopy(p.customers))
    restarted.intake.reindex()
    restarted.store.reindex()
    restarted.customer_stage.reindex()
    restarted._offsets = dict(p._offsets)
    feed(restarted, later)
    for queue in ("sales", "support"):
        a, b = view(straight, queue), view(restarted, queue)
        assert (a.repeat, a.recovered, a.lost, a.unrecovered, a.fcr_decided) == (
            b.repeat,
            b.recovered,
            b.lost,
            b.unrecovered,
            b.fcr_decided,
        )
    assert view(straight, "sales").recovered == 1


def test_the_call_back_list_and_the_waiting_list():
    """Oldest first, tries per customer, no number without the option; dropped at the recovery;
    beside it the contacts waiting now, a returning customer's marked."""
    p = pipeline()
    feed(p, call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:30"))
    feed(p, call("c2", ALICE, "support", "10:01:00", "abandoned", "10:01:20"))
    feed(p, call("c3", BOB, "sales", "10:05:00", "abandoned", "10:05:40"))
    feed(p, [(CHATS, ev("offered", "h1", at("10:06:00"), queue="support", customer=ALICE))])
    feed(p, [(CALLS, ev("offered", "v9", at("10:06:30"), queue="sales"))])  # a withheld number
    s = p.settings
    board = callbacks.snapshot(p.store, s, at("10:07:00"), "all")
    assert [(c["contact_id"], c["tries"], c["since_s"], c["waited_s"]) for c in board["callbacks"]] == [
        ("c1", 2, 390.0, 30.0),
        ("c2", 1, 340.0, 20.0),
        ("c3", 2, 80.0, 40.0),
    ]
    assert {c["number"] for c in board["callbacks"]} == {None}
    assert board["callbacks"][0]["customer"] == customer_hash(KEY, BOB)[:8]
    assert [(w["contact_id"], w["position"], w["returning"]) for w in board["waiting"]] == [
        ("h1", 1, True),  # Alice again, on chat
        ("v9", 1, False),
    ]
    feed(p, [(CHATS, ev("answered", "h1", at("10:06:40"), agent_id="a3"))])  # Alice reached
    feed(p, tick("10:06:40"))  # once the calls' watermark is there too (the customer clock)
    board = callbacks.snapshot(p.store, s, at("10:07:00"), "all")
    assert [c["contact_id"] for c in board["callbacks"]] == ["c1", "c3"]
    assert [w["contact_id"] for w in board["waiting"] if w["queue"] != "other"] == ["v9"]


def test_numbers_in_the_clear_only_with_the_option():
    p = pipeline(customer_show_clear=True)
    feed(p, call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:30"))
    board = callbacks.snapshot(p.store, p.settings, at("10:01:00"), "all")
    assert [c["number"] for c in board["callbacks"]] == [BOB]
    off = LocalPipeline(settings(customer_key=KEY, partitions=1))
    feed(off, call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:30"))
    assert BOB.encode() not in orjson.dumps([off.queues, off.customers, off.lifecycle])


def test_the_call_back_arriving_before_the_abandon_still_recovers_and_repeats():
    """Two topics are not ordered with each other: the chat (answered 10:00:45) may reach the
    customer stage before the call abandoned at 10:00:25. The customer stage applies them in the
    order of their times all the same (the customer clock): the abandon is recovered, and the chat
    is a repeat of the abandoned call. (Both topics' partitions have announced a watermark
    already: one that has not is not waited for.)"""
    p = pipeline()
    feed(p, tick("10:00:00") + tick("10:00:00", CHATS))
    feed(
        p,
        [
            (CHATS, ev("offered", "h1", at("10:00:40"), queue="support", customer=BOB)),
            (CHATS, ev("answered", "h1", at("10:00:45"), agent_id="a1")),
        ],
    )
    feed(p, call("c1", BOB, "sales", "10:00:20", "abandoned", "10:00:25"), now=at("10:01:00"))
    assert (view(p, "sales").recovered, view(p, "sales").unrecovered) == (0, 1)  # the chat waits
    feed(p, tick("10:00:45"), now=at("10:01:00"))  # the calls' watermark reaches the chat's answer
    sales, chat = view(p, "sales"), p.store.view("support", "chat", at("12:00:00"))
    assert (sales.recovered, sales.lost, sales.unrecovered) == (1, 0, 0)
    assert chat.repeat == {"handled": 0, "abandoned": 1, "dequeued": 0, "other": 0}
    assert p.store.callbacks() == []
    feed(p, [(CALLS, ev("offered", "c9", at("10:00:50"), queue="sales", customer=BOB))], now=at("10:01:00"))
    feed(p, tick("10:00:50", CHATS), now=at("10:01:00"))
    # a repeat of the latest earlier contact, h1, answered and not ended yet: "other"
    assert view(p, "sales").repeat == {"handled": 0, "abandoned": 0, "dequeued": 0, "other": 1}


def test_the_clock_waits_for_a_partition_that_announced_until_it_is_idle():
    """The customer clock is the lowest watermark the contact partitions announced: the chats'
    partition at 10:00 holds the abandon of 10:00:10 back, until it is more than the idle bound
    (5 min here) behind; a chat of 10:00:30 that comes after that is applied on arrival."""
    p = pipeline(customer_idle_s=300.0)
    feed(p, tick("10:00:00", CHATS) + tick("10:00:00"))
    feed(p, call("c1", BOB, "sales", "10:00:00", "abandoned", "10:00:10"))
    feed(p, tick("10:03:00"))
    assert view(p, "sales").unrecovered is None  # nothing of Bob applied yet
    feed(p, tick("10:06:00"))  # the chats 6 min behind: idle
    assert view(p, "sales").unrecovered == 1
    assert p.customer_stage.applied_late == 0
    feed(p, [(CHATS, ev("offered", "h1", at("10:00:30"), queue="sales", customer=BOB))])
    feed(p, [(CHATS, ev("answered", "h1", at("10:00:40"), agent_id="a1"))])
    assert p.customer_stage.applied_late == 2  # released before the clock: on arrival
    sales = view(p, "sales")
    assert (sales.recovered, sales.unrecovered) == (1, 0)


def test_an_event_past_retention_meets_no_state_whether_a_sweep_ran_or_not():
    """A survey of a contact whose retention the watermark has passed: with a sweep before it or
    without, it meets no state, so it is linked to no customer either way (the crash search found
    the customer's at-risk signal depending on when the sweep timer had run)."""
    results = []
    for sweep in (False, True):
        p = pipeline(retention_s=600.0)
        feed(p, call("c1", BOB, "sales", "10:00:00", "answered", "10:00:10"))
        feed(p, tick("10:30:00") + tick("10:30:00", CHATS))  # the watermark 30 min on: c1 is past retention
        if sweep:
            p.sweep(at("10:30:01"))
        feed(p, [(CALLS, ev("survey", "c1", at("10:30:05"), csat=1))])
        feed(p, tick("10:31:00") + tick("10:31:00", CHATS))
        results.append((p.store.at_risk("sales"), sorted(k for k in p.lifecycle if k.startswith("c|"))))
    assert results[0] == results[1]
    assert results[0][0] == 0  # the survey names no customer: no bad-survey signal


def test_a_late_bad_survey_counts_at_risk_whether_its_customer_record_was_gone_or_not():
    """A detractor survey two hours after a handled call (R = 20 min, so the call's windows end at
    10:20 + the lateness): it arrives before the clock has passed that end (held in the record,
    which so lives on) or after it (the record is gone, a new one starts). Both count Dana at risk
    for the survey's queue. A queue remembered past its window (the latest contact's) once made
    them differ: the crash search found it, issue 24."""
    results = []
    for gone in (False, True):
        p = pipeline(repeat_window_s=1200.0)
        feed(p, call("c1", ALICE, "support", "10:00:00", "answered", "10:00:30") + tick("10:01:40", CHATS))
        if gone:
            feed(p, tick("11:00:00") + tick("11:00:00", CHATS))  # the clock past 10:30: Alice's record goes
            assert "u|" + customer_hash(KEY, ALICE) not in p.customers
        feed(p, [(CALLS, ev("survey", "c1", at("12:00:00"), csat=1))])
        feed(p, tick("12:30:00") + tick("12:30:00", CHATS))
        record = p.customers["u|" + customer_hash(KEY, ALICE)]["v"]
        results.append((p.store.at_risk("support"), record["s"], record["r"]))
    assert results[0] == results[1] == (1, [[int(at("12:00:00") * 1000), "S", "support"]], "support")
