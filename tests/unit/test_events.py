import base64

import orjson
import pytest

from streams.core.events import AgentEvent, ContactEvent, Rejection, parse_agent, parse_contact
from streams.dev.local_pipeline import LocalPipeline
from tests.unit.helpers import AGENTS, CALLS, at, settings

NOW = at("10:00:00")


def contact(**fields):
    doc = {
        "event_id": "e1",
        "type": "offered",
        "contact_id": "c1",
        "ts": "2026-11-23T10:00:00Z",
        "queue": "sales",
    }
    doc.update(fields)
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"event_id": "e1", "type": "offered"', "invalid_json"),
        (b'{"ts": NaN}', "invalid_json"),
        (b'{"ts": Infinity}', "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"", "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (contact(event_id=...), "missing_field"),
        (contact(event_id=""), "invalid_field"),
        (contact(event_id="x" * 129), "invalid_field"),
        (contact(event_id=7), "invalid_field"),
        (contact(type=...), "missing_field"),
        (contact(type="teleported"), "unknown_type"),
        (contact(type=["offered"]), "unknown_type"),
        (contact(contact_id=...), "missing_field"),
        (contact(ts=...), "missing_field"),
        (contact(ts="2026-11-23T10:00:00"), "invalid_field"),
        (contact(ts="yesterday"), "invalid_field"),
        (contact(ts=1.5e12), "invalid_field"),
        (contact(ts=True), "invalid_field"),
        (contact(ts="2026-11-23T10:05:01Z"), "future_time"),
        (contact(queue=...), "missing_field"),
        (contact(queue="has space"), "invalid_field"),
        (contact(queue="q" * 65), "invalid_field"),
        (contact(type="transferred", queue=...), "missing_field"),
        (contact(type="answered", queue=...), "missing_field"),
        (contact(type="survey", csat=6), "invalid_field"),
        (contact(type="survey", csat="5"), "invalid_field"),
        (contact(type="survey", nps=11), "invalid_field"),
        (contact(type="survey", resolved="yes"), "invalid_field"),
        (contact(type="survey", ces=0), "invalid_field"),
        (contact(type="survey", ces=8), "invalid_field"),
        (contact(type="survey", ces="5"), "invalid_field"),
        (contact(type="survey", ces=4.5), "invalid_field"),
        (contact(type="survey", ces=True), "invalid_field"),
        (contact(type="missed", queue=...), "missing_field"),
        (contact(type="missed", queue=..., agent_id=""), "invalid_field"),
        (contact(type="dequeued", queue=..., reason=""), "invalid_field"),
        (contact(type="dequeued", queue=..., reason="time out"), "invalid_field"),
        (contact(type="dequeued", queue=..., reason="t" * 33), "invalid_field"),
        (contact(type="dequeued", queue=..., reason=5), "invalid_field"),
    ],
)
def test_contact_rejections(raw, reason):
    result = parse_contact(raw, NOW, 300)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.detail


def test_valid_contact_forms_and_extra_fields_ignored():
    ok = parse_contact(contact(ts=1795428000000, extra={"nested": [1]}), NOW, 300)
    assert isinstance(ok, ContactEvent) and ok.ts == 1795428000.0 and ok.queue == "sales"
    ok = parse_contact(contact(ts="2026-11-23T11:00:00+01:00"), NOW, 300)
    assert isinstance(ok, ContactEvent) and ok.ts == NOW
    ok = parse_contact(contact(ts="2026-11-23T10:05:00Z"), NOW, 300)  # exactly 5 min ahead is allowed
    assert isinstance(ok, ContactEvent)
    survey = parse_contact(contact(type="survey", queue=..., csat=4, nps=0, resolved=False), NOW, 300)
    assert isinstance(survey, ContactEvent) and (survey.csat, survey.nps, survey.resolved) == (4, 0, False)
    assert survey.ces is None
    survey = parse_contact(contact(type="survey", queue=..., ces=7), NOW, 300)
    assert isinstance(survey, ContactEvent) and survey.ces == 7 and survey.csat is None
    missed = parse_contact(contact(type="missed", queue=..., agent_id="a1"), NOW, 300)
    assert isinstance(missed, ContactEvent) and missed.agent_id == "a1"


@pytest.mark.parametrize(
    "given, label",
    [
        (..., "other"),  # absent
        ("timeout", "timeout"),
        ("empty", "empty"),
        ("key", "key"),
        ("withdraw", "withdraw"),
        ("overflow", "overflow"),
        ("other", "other"),
        ("voicemail", "other"),  # valid but not in SPEC's vocabulary: counted as other (bounded label set)
        ("t" * 32, "other"),
        ("TIMEOUT", "other"),  # labels are case-sensitive, as in PromQL
    ],
)
def test_dequeue_reasons_map_to_a_fixed_label_set(given, label):
    result = parse_contact(contact(type="dequeued", queue=..., reason=given), NOW, 300)
    assert isinstance(result, ContactEvent) and result.reason == label


def agent_doc(**fields):
    """An agent state event, ``fields`` changed; a field set to ``...`` is left out."""
    doc = {"event_id": "e", "type": "state", "agent_id": "a", "state": "away", "queues": [], "ts": 1}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    "doc, reason",
    [
        (agent_doc(event_id=..., state="available", queues=["q"]), "missing_field"),
        (agent_doc(type="login", state="available"), "unknown_type"),
        (agent_doc(state="napping"), "unknown_state"),
        (agent_doc(state="busy", queues="q"), "invalid_field"),
        (agent_doc(state="busy", queues=["a b"]), "invalid_field"),
        (agent_doc(state="busy", queues=...), "missing_field"),
        (agent_doc(name=""), "invalid_field"),
        (agent_doc(name="n" * 129), "invalid_field"),
        (agent_doc(name=7), "invalid_field"),
        (agent_doc(reason=""), "invalid_field"),
        (agent_doc(reason="r" * 65), "invalid_field"),
        (agent_doc(reason="lunch/break"), "invalid_field"),
        (agent_doc(reason=["lunch"]), "invalid_field"),
    ],
)
def test_agent_rejections(doc, reason):
    result = parse_agent(orjson.dumps(doc), NOW, 300)
    assert isinstance(result, Rejection) and result.reason == reason


def test_agent_valid():
    doc = {
        "event_id": "e",
        "type": "state",
        "agent_id": "a",
        "state": "acw",
        "queues": ["q", "q", "r"],
        "ts": "2026-11-23T09:00:00Z",
    }
    result = parse_agent(orjson.dumps(doc), NOW, 300)
    assert isinstance(result, AgentEvent) and result.queues == ("q", "r")
    assert (result.name, result.reason) == (None, None)
    doc.update(state="away", name="Zoë Müller-Østergaard (team B)", reason="Training 1.5 h_x-y")
    result = parse_agent(orjson.dumps(doc), NOW, 300)
    assert isinstance(result, AgentEvent) and result.name == "Zoë Müller-Østergaard (team B)"
    assert result.reason == "Training 1.5 h_x-y"
    doc.update(name="n" * 128, reason="r" * 64)
    result = parse_agent(orjson.dumps(doc), NOW, 300)
    assert isinstance(result, AgentEvent) and result.name == "n" * 128 and result.reason == "r" * 64


def test_dead_letter_carries_reason_source_and_original_bytes_and_valid_events_still_count():
    p = LocalPipeline(settings())
    bad = p.record(CALLS, b"\xff not json", key="k1")
    good = p.record(
        CALLS,
        {"event_id": "e", "type": "offered", "contact_id": "c", "ts": "2026-11-23T10:00:00Z", "queue": "q"},
        key="c",
    )
    wrong = p.record(AGENTS, b'{"event_id": "x"}', key="a1", partition=3)
    p.feed([bad, good, wrong], now=NOW)
    assert [(d.reason, d.source.topic, d.source.partition, d.source.offset) for d in p.dead] == [
        ("invalid_utf8", CALLS, 0, 0),
        ("missing_field", AGENTS, 3, 0),
    ]
    doc = orjson.loads(p.dead[0].to_json())
    assert base64.b64decode(doc["value_b64"]) == b"\xff not json"
    assert base64.b64decode(doc["key_b64"]) == b"k1"
    assert doc["reason"] == "invalid_utf8" and doc["offset"] == 0 and doc["topic"] == CALLS
    assert p.store.view("q", "voice", NOW).counters["offered"] == 1
    assert p.results == {(CALLS, "rejected"): 1, (CALLS, "accepted"): 1, (AGENTS, "rejected"): 1}
