"""The state tables' layouts (streams/core/layout.py, the contact codec in core/lifecycle.py) are
what running deployments hold in their changelogs and snapshots: these pin the bytes, so a
refactoring that changes them fails here rather than after an upgrade."""

from __future__ import annotations

import orjson

from streams.core import layout
from streams.core.lifecycle import AgentState, ContactState
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
    ]
    assert ContactState.from_wire(orjson.loads(orjson.dumps(contact.to_wire()))) == contact
    # a record of an older worker: 14 items (no agent, nothing decided) or 15 (nothing decided)
    assert ContactState.from_wire(contact.to_wire()[:14]) == ContactState(1, "voice", "q", "W", 1.0, 2.0, 3.0)
    assert ContactState.from_wire(contact.to_wire()[:15]).decided == -1
    assert AgentState(2, "away", ["q"], 5.0, ["e1"], reason="lunch").to_wire() == {
        "p": 2,
        "s": "away",
        "q": ["q"],
        "t": 5.0,
        "i": ["e1"],
        "r": "lunch",
    }


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
    assert {k.split("|", 1)[0] for k in p.queues} == {"t", "b", "d", "w", "a"} and set(p.agents) == {"p|a1"}
