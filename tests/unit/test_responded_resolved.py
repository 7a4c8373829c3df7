"""SPEC §1's ``responded`` and ``resolved`` and the optional ``customer``/``case_id`` fields: their
validation and where the lifecycle accepts them (the rules: core/lifecycle.py, docs/kpis.md)."""

import orjson
import pytest

from streams.core.events import ContactEvent, Rejection, parse_contact
from streams.core.lifecycle import ContactState, apply_contact
from tests.unit.helpers import CHATS, at, ev, run

NOW = at("10:30:00")


def _parse(**fields):
    doc = {"event_id": "e1", "type": "resolved", "contact_id": "c1", "ts": "2026-11-23T10:00:00Z", **fields}
    return parse_contact(orjson.dumps(doc), NOW, 300.0)


def test_customer_and_case_id_are_optional_strings_of_1_to_128_characters_on_any_type():
    e = _parse(customer="+4930123456", case_id="T-77")
    assert isinstance(e, ContactEvent) and e.type == "resolved"
    assert (e.customer, e.case_id) == ("+4930123456", "T-77")
    e = _parse(type="responded", customer="x" * 128)
    assert isinstance(e, ContactEvent) and e.customer == "x" * 128 and e.case_id is None
    e = _parse(type="offered", queue="chat", case_id="c")
    assert isinstance(e, ContactEvent) and e.case_id == "c" and e.customer is None
    e = _parse()
    assert isinstance(e, ContactEvent) and e.customer is None and e.case_id is None


@pytest.mark.parametrize(
    "fields",
    [{"customer": ""}, {"customer": "x" * 129}, {"customer": 42}, {"case_id": ["a"]}, {"case_id": ""}],
)
def test_bad_customer_or_case_id_is_an_invalid_field(fields):
    r = _parse(**fields)
    assert isinstance(r, Rejection) and r.reason == "invalid_field" and next(iter(fields)) in r.detail


def _apply(state, etype, ts, **fields):
    doc = ev(etype, "c1", ts, **fields)
    parsed = parse_contact(orjson.dumps(doc), NOW, 300.0)
    assert isinstance(parsed, ContactEvent)
    return apply_contact(
        state, parsed, partition=0, offset=0, channel="chat", watermark=ts, lateness_s=600, acw_timeout_s=600
    )


def _state(*steps):
    """The contact's state after ``steps`` (etype, time, fields), each accepted."""
    state = None
    for etype, ts, fields in steps:
        out = _apply(state, etype, ts, **fields)
        assert not isinstance(out, Rejection), out
        state = out.state
    return state


OFFERED = ("offered", at("10:00:00"), {"queue": "chat"})
ANSWERED = ("answered", at("10:00:10"), {"agent_id": "a1"})


def test_the_first_responded_of_a_segment_is_kept_a_later_one_changes_nothing():
    state = _state(OFFERED, ANSWERED, ("responded", at("10:00:40"), {}))
    assert state.responded and state.last == at("10:00:40")
    before = ContactState.from_wire(list(state.to_wire()))
    # a later reply, also timed before the first one: accepted, no fact, the order untouched
    out = _apply(state, "responded", at("10:00:20"))
    assert not isinstance(out, Rejection) and out.facts == [] and not out.duplicate
    assert (out.state.last, out.state.responded, out.state.phase) == (before.last, True, "H")


def test_responded_while_waiting_counts_and_the_contact_keeps_waiting():
    """A chat agent may reply before the platform assigns the chat: no answer is made up."""
    state = _state(OFFERED, ("responded", at("10:00:05"), {}))
    assert state.phase == "W" and state.responded and state.answered == 0.0
    state = _state(OFFERED, ("responded", at("10:00:05"), {}), ANSWERED, ("responded", at("10:00:30"), {}))
    assert state.phase == "H" and state.answered == at("10:00:10")


def test_a_transfer_starts_a_segment_that_can_have_its_own_first_response():
    replied: tuple[str, float, dict] = ("responded", at("10:00:20"), {})
    assert _state(OFFERED, ANSWERED, replied).responded
    state = _state(OFFERED, ANSWERED, replied, ("transferred", at("10:01:00"), {"queue": "vip"}))
    assert not state.responded and state.queue == "vip"


def test_responded_after_ended_is_accepted_and_after_abandoned_or_before_the_previous_event_is_not():
    ended = _state(OFFERED, ANSWERED, ("ended", at("10:05:00"), {}))
    out = _apply(ended, "responded", at("10:06:00"))
    assert not isinstance(out, Rejection) and out.facts == [] and not out.state.responded
    assert out.state.last == at("10:05:00")
    gone = _state(OFFERED, ("abandoned", at("10:00:30"), {}))
    r = _apply(gone, "responded", at("10:00:40"))
    assert isinstance(r, Rejection) and r.reason == "lifecycle" and "abandoned" in r.detail
    answered = _state(OFFERED, ANSWERED)
    r = _apply(answered, "responded", at("10:00:05"))  # the first response, before the answer
    assert isinstance(r, Rejection) and "before the contact's previous event" in r.detail


@pytest.mark.parametrize(
    "steps",
    [
        [OFFERED],
        [OFFERED, ANSWERED],
        [OFFERED, ("abandoned", at("10:00:30"), {})],
        [OFFERED, ("dequeued", at("10:00:30"), {})],
        [OFFERED, ANSWERED, ("ended", at("10:05:00"), {}), ("wrapup_ended", at("10:05:30"), {})],
    ],
)
def test_resolved_is_accepted_in_every_phase_any_number_of_times_and_changes_nothing(steps):
    state = _state(*steps)
    before = orjson.loads(orjson.dumps(state.to_wire()))
    for ts in (at("10:20:00"), at("09:59:00")):
        out = _apply(state, "resolved", ts)
        assert not isinstance(out, Rejection) and out.facts == []
        state = out.state
    after = state.to_wire()
    # only the event ids, the retention clock (latest event of any kind) and the decided offset moved
    assert after[:6] == before[:6] and after[7:12] == before[7:12] and after[13:] == before[13:]
    assert state.seen == at("10:20:00") and len(state.ids) == len(before[12]) + 2


def test_through_the_pipeline_no_dead_letter_and_the_kpis_of_before():
    chat = [
        (CHATS, ev("offered", "h1", at("10:00:00"), queue="web", customer="v-1", case_id="k1")),
        (CHATS, ev("responded", "h1", at("10:00:04"))),
        (CHATS, ev("answered", "h1", at("10:00:10"), agent_id="a1")),
        (CHATS, ev("responded", "h1", at("10:00:12"))),
        (CHATS, ev("ended", "h1", at("10:05:00"))),
        (CHATS, ev("wrapup_ended", "h1", at("10:05:30"))),
        (CHATS, ev("resolved", "h1", at("10:06:00"), case_id="k1")),
        (CHATS, ev("resolved", "h1", at("10:07:00"))),
    ]
    p = run(chat, now=NOW)
    assert p.dead == []
    view = p.store.view("web", "chat", NOW)
    assert (view.counters["offered"], view.counters["answered"], view.counters["handled"]) == (1, 1, 1)
    assert view.counters["answered_in_threshold"] == 1  # wait 10 s: the reply at 4 s is no answer
