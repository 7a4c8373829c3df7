"""The state tables' layouts (streams/core/layout.py, the contact codec in core/lifecycle.py) are
what running deployments hold in their changelogs and snapshots: these pin the bytes, so a
refactoring that changes them fails here rather than after an upgrade."""

from __future__ import annotations

import orjson

from streams.core import kpis, layout
from streams.core.lifecycle import CONTACT_FIELDS, AgentState, ContactState
from streams.core.queues import QueueStore
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import AGENTS, CALLS, agent, at, ev, settings


def test_keys_are_the_ones_earlier_versions_wrote_and_parse_back():
    assert layout.contact_key("voice", "c|1") == "c|voice|c|1"
    assert layout.contact_key_parts("c|voice|c|1") == ("voice", "c|1")
    assert layout.agent_key("a1") == "g|a1" and layout.registry_key(3) == "q|3"
    assert layout.watermark_key("cc.calls", 2) == "m|cc.calls|2"
    assert layout.seen_agent_key("cc.calls", 2, "a|1") == "r|cc.calls|2|a|1"
    assert layout.seen_agent_key_parts("r|cc.calls|2|a|1") == ("cc.calls", 2, "a|1")
    assert [
        layout.totals_key("q", "voice"),
        layout.bucket_key("q", "voice", 600),
        layout.day_key("q", "chat", "2026-11-24"),
        layout.waiting_key("q", "voice"),
        layout.queue_agents_key("q"),
        layout.agent_record_key("a1"),
    ] == ["t|q|voice", "b|q|voice|600", "d|q|chat|2026-11-24", "w|q|voice", "a|q", "p|a1"]
    assert layout.agent_of_record("p|a1") == "a1"
    assert layout.partition_for_queue("sales", 8) == 4  # CRC-32: the same in every release
    assert (
        layout.queue_record_partition("b|sales|voice|600", 8)
        == layout.agent_record_partition("p|sales", 8)
        == 4
    )


def test_a_facts_batch_has_the_bytes_of_earlier_versions():
    rows = [["cc.calls/0", 7, 0, ["offered", "q", "voice", 1.5, "c1", 0.0, False, None]]]
    blob = layout.encode_facts(rows)
    assert blob == b'{"f":[["cc.calls/0",7,0,["offered","q","voice",1.5,"c1",0.0,false,null]]]}'
    assert layout.decode_facts(blob) == rows


def test_contact_and_agent_records_keep_their_wire_form():
    contact = ContactState(1, "voice", "q", "W", 1.0, 2.0, 3.0, agent="a1", decided=9)
    assert contact.to_wire() == [
        1,
        "voice",
        "q",
        "W",
        1.0,
        2.0,
        3.0,
        0.0,
        None,
        0.0,
        0.0,
        False,
        [],
        -1,
        "a1",
        9,
        False,
    ]
    assert ContactState.from_wire(orjson.loads(orjson.dumps(contact.to_wire()))) == contact
    # a record of an older worker: 14 items (no agent, nothing decided) or 15 (nothing decided)
    assert ContactState.from_wire(contact.to_wire()[:14]) == ContactState(1, "voice", "q", "W", 1.0, 2.0, 3.0)
    assert ContactState.from_wire(contact.to_wire()[:15]).decided == -1
    # 16 items: before ``responded`` existed, the segment has no response yet
    assert ContactState.from_wire(contact.to_wire()[:16]) == contact and not contact.responded
    assert AgentState(2, "away", ["q"], 5.0, ["e1"], reason="lunch").to_wire() == {
        "p": 2,
        "s": "away",
        "q": ["q"],
        "t": 5.0,
        "i": ["e1"],
        "r": "lunch",
    }


def test_a_contact_record_lists_every_field_in_declaration_order():
    """``to_wire`` names the fields one by one: each in its place, none left out (all distinct here)."""
    times = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    contact = ContactState(3, "chat", "q", "E", *times, True, ["e"], 8, "a", 9, True, "h", "case")
    assert contact.to_wire() == [getattr(contact, name) for name in CONTACT_FIELDS]
    assert len(CONTACT_FIELDS) == 19
    # a contact with no customer and no case keeps the 17 items of before (most contacts)
    plain = ContactState(3, "chat", "q", "E", *times, True, ["e"], 8, "a", 9, True)
    assert plain.to_wire() == contact.to_wire()[:17] and ContactState.from_wire(plain.to_wire()) == plain


def test_equal_times_of_a_contact_record_are_one_object():
    """A record read back from a changelog or snapshot has a float object per time; the next write
    shares them again: offered = last = seen, and the one 0.0 of every contact for unset times.
    (The compiled core would box each float field anew: tests/static/test_compiled_core.py.)"""
    waiting = ContactState(1, "voice", "q", "W", 1.5, 1.5, 1.5, decided=7)
    read = orjson.loads(orjson.dumps(waiting.to_wire()))
    assert read[4] is not read[5] and read[7] is not read[9]  # as JSON gives them
    wire = ContactState.from_wire(read).to_wire()
    assert wire == waiting.to_wire()
    assert wire[4] is wire[5] is wire[6]
    assert wire[7] is wire[9] is wire[10] is ContactState(2, "chat", "r", "W", 9.0, 9.0, 9.0).to_wire()[7]
    ended = ContactState(1, "voice", "q", "E", 1.0, 4.0, 4.0, answered=2.0, ended=4.0, hold_total=0.5)
    wire = ContactState.from_wire(orjson.loads(orjson.dumps(ended.to_wire()))).to_wire()
    assert wire == ended.to_wire() and wire[10] is wire[5] is wire[6]
    assert [wire[4], wire[7], wire[9]] == [1.0, 2.0, 0.5]


def test_a_pipeline_writes_exactly_these_keys():
    p = LocalPipeline(settings())
    p.feed(
        [
            p.record(CALLS, ev("offered", "c1", at("10:00:00"), queue="sales")),
            p.record(CALLS, ev("answered", "c1", at("10:00:05"), agent_id="a1")),
            p.record(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00"))),
        ],
        now=at("10:00:10"),
    )
    assert set(p.lifecycle) == {
        "c|voice|c1",
        "m|cc.calls|0",
        "q|0",
        "r|cc.calls|0|a1",
        "g|a1",
        "m|cc.agents|0",
        "r|cc.agents|0|a1",
    }
    assert p.lifecycle["m|cc.calls|0"][:2] == [at("10:00:05"), 1]
    assert {k.split("|", 1)[0] for k in p.queues} == {"t", "b", "d", "w", "a", "e", "i"} and set(
        p.agents
    ) == {"p|a1"}


#: the queue table of one small scenario (below) as a worker of 183f8a1 (before first response
#: times) wrote it, byte for byte: a worker of today reads it
PREVIOUS_QUEUE_RECORDS = {
    "a|sales": b'{"h":{"cc.agents/0":[0,0]},"v":{"a1":["busy",1795428000.0]}}',
    "b|sales|voice|1795428000": b'{"h":{"cc.calls/0":[4,0]},"v":[3,1,0,0,1,5.0,0,0,0,0,0,0,0,0,0,0,0,0,0]}',
    "b|sales|voice|1795428030": b'{"h":{"cc.calls/0":[3,0]},"v":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0]}',
    "d|sales|voice|2026-11-23": b'{"h":{"cc.calls/0":[4,0]},"v":[3,1,0,0,1,5.0,0,0,0,0,0,0,0,0,0,1,0,0,0]}',
    "t|sales|voice": b'{"h":{"cc.calls/0":[4,0]},"v":{"c":[3,1,0,0,1,0,0],'
    b'"wa":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,5.0],"wb":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],'
    b'"hd":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"wd":[0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,30.0],'
    b'"dq":{"timeout":1},"ms":0}}',
    "w|sales|voice": b'{"h":{"cc.calls/0":[4,0]},"v":{"c3":1795428002.0}}',
}


#: the same queue table as this version writes it: two more window sums (first responses and
#: their sum), the first response histogram ``fr`` at the end of the totals, and seven more window
#: sums (the customer's: repeats, recovered, lost, FCR decided and resolved, resolutions and their
#: time); the ended waits of the offered bucket 10:00:00 (c1, c2) for grading their EWT; the
#: interval 10:00-10:30's sums
CURRENT_QUEUE_RECORDS = {
    "i|sales|voice|1795428000": b'{"h":{"cc.calls/0":[4,0]},'
    b'"v":[3,1,0,0,1,5.0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0]}',
    "e|sales|voice|1795428000": b'{"h":{"cc.calls/0":[3,0]},"v":[[1795428000.0,1795428005.0,"answered",0],'
    b'[1795428001.0,1795428031.0,"dequeued",0]]}',
    "a|sales": b'{"h":{"cc.agents/0":[0,0]},"v":{"a1":["busy",1795428000.0]}}',
    "b|sales|voice|1795428000": b'{"h":{"cc.calls/0":[4,0]},'
    b'"v":[3,1,0,0,1,5.0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}',
    "b|sales|voice|1795428030": b'{"h":{"cc.calls/0":[3,0]},'
    b'"v":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0]}',
    "d|sales|voice|2026-11-23": b'{"h":{"cc.calls/0":[4,0]},'
    b'"v":[3,1,0,0,1,5.0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0]}',
    "t|sales|voice": b'{"h":{"cc.calls/0":[4,0]},"v":{"c":[3,1,0,0,1,0,0],'
    b'"wa":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,5.0],"wb":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],'
    b'"hd":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"wd":[0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,30.0],'
    b'"dq":{"timeout":1},"ms":0,"fr":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}',
    "w|sales|voice": b'{"h":{"cc.calls/0":[4,0]},"v":{"c3":1795428002.0}}',
}


def _scenario(p: LocalPipeline) -> None:
    p.feed(
        [
            p.record(CALLS, ev("offered", "c1", at("10:00:00"), queue="sales", event_id="e1")),
            p.record(CALLS, ev("answered", "c1", at("10:00:05"), agent_id="a1", event_id="e2")),
            p.record(CALLS, ev("offered", "c2", at("10:00:01"), queue="sales", event_id="e3")),
            p.record(CALLS, ev("dequeued", "c2", at("10:00:31"), reason="timeout", event_id="e4")),
            p.record(CALLS, ev("offered", "c3", at("10:00:02"), queue="sales", event_id="e5")),
            p.record(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00"), event_id="a1")),
        ],
        now=at("10:00:40"),
    )


def test_queue_records_are_written_with_the_bytes_of_earlier_versions():
    p = LocalPipeline(settings())
    _scenario(p)
    assert {k: orjson.dumps(v) for k, v in p.queues.items()} == CURRENT_QUEUE_RECORDS


def test_queue_records_of_the_current_format_decode_to_what_was_counted():
    """A worker started on state an earlier one wrote reads it through the codecs: hand-computed
    from the scenario (3 offered, c1 answered after 5 s, c2 dequeued after 30 s, c3 waiting)."""
    data = {k: orjson.loads(v) for k, v in PREVIOUS_QUEUE_RECORDS.items()}
    totals = layout.decode_totals(dict(data["t|sales|voice"]["v"]))  # type: ignore[arg-type]
    assert dict(zip(layout.COUNTERS, totals["c"], strict=True)) == {
        "offered": 3,
        "answered": 1,
        "abandoned": 0,
        "short_abandoned": 0,
        "answered_in_threshold": 1,
        "handled": 0,
        "transferred_out": 0,
    }
    assert totals["wa"][layout.WAIT_BUCKETS.index(5)] == 1 and totals["wa"][-1] == 5.0
    assert totals["wd"][layout.WAIT_BUCKETS.index(30)] == 1 and totals["dq"] == {"timeout": 1}
    day = layout.decode_window(list(data["d|sales|voice|2026-11-23"]["v"]))
    assert (day[kpis.OFFERED], day[kpis.ANSWERED], day[kpis.WAIT_SUM], day[kpis.DEQUEUED]) == (3, 1, 5.0, 1)
    store = QueueStore(data, settings().kpi)
    view = store.view("sales", "voice", at("10:00:40"))
    assert (view.counters["offered"], view.dequeued["timeout"], view.waiting, view.oldest_wait_s) == (
        3,
        1,
        1,
        38.0,
    )
    assert view.windows["5m"][kpis.OFFERED] == 3 and view.windows["5m"][kpis.DEQUEUED] == 1
    assert store.agent_counts("sales")["busy"] == 1
    # reading changes nothing: the records still have their bytes
    assert {k: orjson.dumps(v) for k, v in data.items()} == PREVIOUS_QUEUE_RECORDS
    assert view.first_response_hist == [0] * 17 and view.windows["5m"][kpis.FR_N] == 0


def test_new_records_have_the_current_layout():
    assert list(layout.new_totals()) == ["c", "wa", "wb", "hd", "wd", "dq", "ms", "fr"]
    assert len(layout.new_totals()["wa"]) == len(layout.WAIT_BUCKETS) + 2
    assert layout.new_totals()["fr"] == [0] * (len(layout.FIRST_RESPONSE_BUCKETS) + 2)
    assert layout.new_window_record() == {"h": {}, "v": [0] * kpis.WIDTH}
    old = {"c": [1] * 7, "wa": [0] * 17, "wb": [0] * 17, "hd": [0] * 15}  # before dequeued/missed
    assert list(layout.decode_totals(old)) == ["c", "wa", "wb", "hd", "wd", "dq", "ms", "fr"]  # type: ignore[arg-type]
    before_fr: dict = {**layout.new_totals(), "ms": 4}  # before first responses
    del before_fr["fr"]
    assert layout.decode_totals(before_fr)["ms"] == 4 and list(before_fr)[-1] == "fr"  # type: ignore[arg-type]
    assert layout.decode_window([1.0] * 15) == [1.0] * 15 + [0] * (kpis.WIDTH - 15)
