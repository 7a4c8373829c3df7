"""Chatwoot's webhooks -> ccmon events (docs/sources/chatwoot.md): signatures per Chatwoot's scheme,
the mapping table step by step, deliveries duplicated, reordered and late, and every event built
checked with the worker's own validation."""

from __future__ import annotations

import pytest

from producers.sources.events import SourceEvent, check
from producers.sources.webhooks.chatwoot import Chatwoot
from producers.sources.webhooks.platform import BadRequest, ConfigError, Ignored, PlatformConfig, Unauthorized
from tests.unit.helpers_webhooks import (
    CHATWOOT_SECRET,
    chatwoot_conversation,
    chatwoot_event,
    chatwoot_message,
    chatwoot_signed,
)

T = 1_796_000_000.0  # a fixed past instant: nothing here depends on the clock


def platform(**options: str) -> Chatwoot:
    return Chatwoot(PlatformConfig(CHATWOOT_SECRET, options))


def parse(p: Chatwoot, doc: dict) -> list[SourceEvent]:
    body, headers = chatwoot_signed(doc, T)
    p.verify(headers, body, T)
    out = p.parse(headers, body)
    for ev in out:
        check(ev)  # the worker's own validation: a source building what it rejects fails here
    return out


def brief(events: list[SourceEvent]) -> list[tuple]:
    return [
        (
            e.type,
            e.key,
            e.event["ts"] / 1000,
            e.event.get("queue") or e.event.get("agent_id") or e.event.get("reason"),
        )
        for e in events
    ]


# ---- authenticity -----------------------------------------------------------------------------------
def test_a_signature_computed_per_chatwoots_scheme_passes_and_any_change_fails():
    p = platform()
    doc = chatwoot_event("conversation_created", chatwoot_conversation(7, created=T))
    body, headers = chatwoot_signed(doc, T)
    p.verify(headers, body, T)
    p.verify(
        {**headers, "X-Chatwoot-Signature": headers["X-Chatwoot-Signature"].removeprefix("sha256=")}, body, T
    )
    with pytest.raises(Unauthorized, match="does not match"):
        p.verify(headers, body + b" ", T)
    with pytest.raises(Unauthorized, match="does not match"):
        p.verify({**headers, "X-Chatwoot-Timestamp": str(int(T) + 1)}, body, T)
    other_body, other = chatwoot_signed(doc, T, secret=b"someone else")
    with pytest.raises(Unauthorized, match="does not match"):
        p.verify(other, other_body, T)
    with pytest.raises(Unauthorized, match="missing"):
        p.verify({"Content-Type": "application/json"}, body, T)


def test_a_stale_or_future_timestamp_is_refused_even_with_a_good_signature():
    p = platform()
    doc = chatwoot_event("conversation_created", chatwoot_conversation(7, created=T))
    body, headers = chatwoot_signed(doc, T - 301)
    with pytest.raises(Unauthorized, match="stale"):
        p.verify(headers, body, T)
    body, headers = chatwoot_signed(doc, T + 301)
    with pytest.raises(Unauthorized, match="stale"):
        p.verify(headers, body, T)
    body, headers = chatwoot_signed(doc, T - 299)
    p.verify(headers, body, T)
    body, headers = chatwoot_signed(doc, T - 3000)
    platform(max_age_s="3600").verify(headers, body, T)  # a replay of recorded deliveries


# ---- the mapping table ----------------------------------------------------------------------------
def test_a_conversation_created_assigned_replied_and_resolved():
    p = platform()
    conv = chatwoot_conversation(7, created=T)
    assert brief(parse(p, chatwoot_event("conversation_created", conv))) == [
        ("offered", "chatwoot-7", T, "inbox-1")
    ]
    assigned = chatwoot_conversation(7, created=T, updated=T + 20, assignee=5)
    got = parse(p, chatwoot_event("conversation_updated", assigned, assignee_id=(None, 5)))
    assert brief(got) == [
        ("offered", "chatwoot-7", T, "inbox-1"),
        ("answered", "chatwoot-7", T + 20, "chatwoot-agent-5"),
    ]
    replied = chatwoot_conversation(7, created=T, updated=T + 50, assignee=5, first_reply=T + 50)
    got = parse(p, chatwoot_message(replied, 900, T + 50, agent=5))
    assert [e.type for e in got] == ["offered", "answered", "responded"]
    assert got[2].event["ts"] == (T + 50) * 1000
    resolved = chatwoot_conversation(
        7, created=T, updated=T + 300, assignee=5, first_reply=T + 50, status="resolved"
    )
    got = parse(p, chatwoot_event("conversation_status_changed", resolved, status=("open", "resolved")))
    assert brief(got)[-3:] == [
        ("ended", "chatwoot-7", T + 300, None),
        ("wrapup_ended", "chatwoot-7", T + 300, None),
        ("resolved", "chatwoot-7", T + 300, None),
    ]
    assert all(e.stream == "chats" for e in got)
    assert got[0].event["customer"] == "chatwoot-contact-501"


def test_a_later_agent_reply_repeats_the_first_responded_exactly():
    p = platform()
    conv = chatwoot_conversation(7, created=T, updated=T + 80, assignee=5, first_reply=T + 50)
    first = parse(
        p,
        chatwoot_message(
            chatwoot_conversation(7, created=T, updated=T + 50, assignee=5, first_reply=T + 50),
            900,
            T + 50,
            agent=5,
        ),
    )
    later = parse(p, chatwoot_message(conv, 901, T + 80, agent=5))
    assert [e.event for e in later if e.type == "responded"] == [
        e.event for e in first if e.type == "responded"
    ]


def test_the_customers_messages_private_notes_and_bots_give_no_response():
    p = platform()
    conv = chatwoot_conversation(7, created=T, updated=T + 10)
    assert [e.type for e in parse(p, chatwoot_message(conv, 1, T + 10))] == ["offered"]
    assert [e.type for e in parse(p, chatwoot_message(conv, 2, T + 11, agent=5, private=True))] == ["offered"]
    bot = chatwoot_message(conv, 3, T + 12, agent=9)
    bot["sender"]["type"] = "agent_bot"
    assert [e.type for e in parse(p, bot)] == ["offered"]


def test_a_delivery_before_the_creation_emits_the_creation_with_its_own_id_and_time():
    """Seen on real helpdesks: the reply's delivery overtakes the creation's and the assignment's.
    The implied steps carry the ids those deliveries give, so when they arrive they are duplicates."""
    p = platform()
    replied = chatwoot_conversation(7, created=T, updated=T + 50, assignee=5, first_reply=T + 50)
    early = parse(p, chatwoot_message(replied, 900, T + 50, agent=5))
    created = parse(p, chatwoot_event("conversation_created", chatwoot_conversation(7, created=T)))
    assert created[0].event == early[0].event  # same id, same time, same queue: a duplicate
    assigned = parse(
        p,
        chatwoot_event(
            "conversation_updated",
            chatwoot_conversation(7, created=T, updated=T + 20, assignee=5),
            assignee_id=(None, 5),
        ),
    )
    assert assigned[1].event_id == early[1].event_id  # the implied answered: same id (first one counts)


def test_a_redelivery_gives_identical_events():
    p = platform()
    doc = chatwoot_event(
        "conversation_updated",
        chatwoot_conversation(7, created=T, updated=T + 20, assignee=5),
        assignee_id=(None, 5),
    )
    assert parse(p, doc) == parse(p, doc)


@pytest.mark.parametrize("rule, reason", [("abandoned", None), ("dequeued", "other")])
def test_resolved_without_an_agent_is_abandoned_or_dequeued_by_the_rule(rule: str, reason: str | None):
    p = platform(unanswered=rule)
    resolved = chatwoot_conversation(7, created=T, updated=T + 90, status="resolved")
    got = parse(p, chatwoot_event("conversation_status_changed", resolved, status=("open", "resolved")))
    assert brief(got) == [("offered", "chatwoot-7", T, "inbox-1"), (rule, "chatwoot-7", T + 90, reason)]


def test_a_reassignment_is_a_transfer_within_the_queue_answered_by_the_new_agent():
    p = platform()
    conv = chatwoot_conversation(7, created=T, updated=T + 40, assignee=6)
    got = parse(p, chatwoot_event("conversation_updated", conv, assignee_id=(5, 6)))
    assert brief(got) == [
        ("offered", "chatwoot-7", T, "inbox-1"),
        ("transferred", "chatwoot-7", T + 40, "inbox-1"),
        ("answered", "chatwoot-7", T + 40, "chatwoot-agent-6"),
    ]
    assert len({e.event_id for e in got}) == 3


def test_queues_by_team_with_names_and_a_move_between_teams():
    p = platform(queue_by="team", queues="team-3=billing,inbox-1=web")
    assert (
        brief(parse(p, chatwoot_event("conversation_created", chatwoot_conversation(7, created=T))))[0][3]
        == "web"
    )
    moved = chatwoot_conversation(7, created=T, updated=T + 30, team=3)
    got = parse(p, chatwoot_event("conversation_updated", moved, team_id=(None, 3)))
    assert brief(got)[-1] == ("transferred", "chatwoot-7", T + 30, "billing")


def test_a_reopened_conversation_is_a_new_contact_and_later_deliveries_follow_it():
    p = platform()
    reopened = chatwoot_conversation(7, created=T, updated=T + 3600, status="open", assignee=5)
    got = parse(p, chatwoot_event("conversation_status_changed", reopened, status=("resolved", "open")))
    cid = f"chatwoot-7-r{int(T + 3600)}"
    assert brief(got) == [("offered", cid, T + 3600, "inbox-1")]
    reply = chatwoot_conversation(7, created=T, updated=T + 3700, assignee=5, first_reply=T + 50)
    after = parse(p, chatwoot_message(reply, 990, T + 3700, agent=5))
    assert {e.key for e in after} == {cid}
    q = platform()
    q.load_state(p.to_state())  # the segment survives a restart through the state file
    assert {e.key for e in parse(q, chatwoot_message(reply, 990, T + 3700, agent=5))} == {cid}


def test_unknown_and_unused_types_are_ignored_and_bad_bodies_are_bad_requests():
    p = platform()
    for kind in ("message_updated", "contact_created", "something_new"):
        body, headers = chatwoot_signed({"event": kind, "id": 1}, T)
        with pytest.raises(Ignored):
            p.parse(headers, body)
    for body, reason in (
        (b"{not json", "not JSON"),
        (b"[1]", "not an object"),
        (b'{"id": 1}', "no 'event'"),
        (b'{"event": "conversation_created", "id": "x", "inbox_id": 1, "timestamp": 1}', "not an id"),
    ):
        with pytest.raises(BadRequest, match=reason):
            p.parse({}, body)


@pytest.mark.parametrize(
    "options",
    [
        {"queue_by": "agent"},
        {"unanswered": "lost"},
        {"source": "two words"},
        {"queues": "inbox=x"},
        {"max_age_s": "0"},
        {"max_age_s": "soon"},
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, str]):
    with pytest.raises(ConfigError):
        platform(**options)


def test_a_reopening_without_changed_attributes_is_told_from_a_bots_hand_over():
    """conversation_opened (and status changes of older versions) say only the new status: a
    conversation opened after a resolution seen before is reopened; one opened from pending (a bot
    handing over) is not."""
    p = platform()
    pending = chatwoot_conversation(7, created=T, updated=T + 30, status="open")
    assert {e.key for e in parse(p, chatwoot_event("conversation_opened", pending))} == {"chatwoot-7"}
    done = chatwoot_conversation(
        7, created=T, updated=T + 300, status="resolved", assignee=5, first_reply=T + 40
    )
    parse(p, chatwoot_event("conversation_status_changed", done))
    again = chatwoot_conversation(
        7, created=T, updated=T + 900, status="open", assignee=5, first_reply=T + 40
    )
    got = parse(p, chatwoot_event("conversation_opened", again))
    assert brief(got) == [("offered", f"chatwoot-7-r{int(T + 900)}", T + 900, "inbox-1")]


def test_a_late_delivery_of_the_first_segment_maps_to_it_and_a_reopened_reply_has_its_own_time():
    p = platform()
    reopened = chatwoot_conversation(
        7, created=T, updated=T + 900, status="open", assignee=5, first_reply=T + 40
    )
    parse(p, chatwoot_event("conversation_status_changed", reopened, status=("resolved", "open")))
    # the first segment's resolution, delivered after the reopening: still the first segment's
    done = chatwoot_conversation(
        7, created=T, updated=T + 300, status="resolved", assignee=5, first_reply=T + 40
    )
    late = parse(p, chatwoot_event("conversation_status_changed", done, status=("open", "resolved")))
    assert {e.key for e in late} == {"chatwoot-7"}
    # a reply in the reopened segment: first_reply_created_at is the first segment's, not this one's
    reply = chatwoot_conversation(7, created=T, updated=T + 950, assignee=5, first_reply=T + 40)
    got = parse(p, chatwoot_message(reply, 77, T + 950, agent=5))
    cid = f"chatwoot-7-r{int(T + 900)}"
    assert brief(got) == [
        ("offered", cid, T + 900, "inbox-1"),
        ("answered", cid, T + 950, "chatwoot-agent-5"),
        ("responded", cid, T + 950, None),
    ]


def test_the_state_is_bounded_by_the_retention():
    p = platform()
    for conv_id, at in ((1, T), (2, T + 8 * 86400)):  # the second resolution comes 8 days later
        done = chatwoot_conversation(conv_id, created=at - 100, updated=at, status="resolved")
        parse(p, chatwoot_event("conversation_status_changed", done, status=("open", "resolved")))
    assert set(p.resolved) == {"2"}


def test_an_update_with_a_status_and_an_assignment_keeps_both_in_lifecycle_order():
    p = platform()
    handed = chatwoot_conversation(7, created=T, updated=T + 15, status="open", assignee=5)
    got = parse(
        p, chatwoot_event("conversation_updated", handed, status=("pending", "open"), assignee_id=(None, 5))
    )
    assert brief(got) == [
        ("offered", "chatwoot-7", T, "inbox-1"),
        ("answered", "chatwoot-7", T + 15, "chatwoot-agent-5"),
    ]
    q = platform()
    done = chatwoot_conversation(8, created=T, updated=T + 60, status="resolved", assignee=6)
    got = parse(
        q, chatwoot_event("conversation_updated", done, status=("open", "resolved"), assignee_id=(None, 6))
    )
    assert [e.type for e in got] == ["offered", "answered", "answered", "ended", "wrapup_ended", "resolved"]
    assert got[1].event_id == got[2].event_id  # the assignment and the implied one: one answered


def test_a_resolution_delivered_before_the_first_reply_carries_the_first_response():
    """The worker takes no first response after ``ended``: a resolution that arrives before its
    reply's delivery emits the reply's step (``first_reply_created_at``, same id) before ``ended``;
    the reply's own delivery is then a duplicate."""
    p = platform()
    conv = dict(created=T, assignee=8, first_reply=T + 70)
    done = chatwoot_conversation(2, updated=T + 300, status="resolved", **conv)  # type: ignore[arg-type]
    out = parse(p, chatwoot_event("conversation_status_changed", done, status=("open", "resolved")))
    steps = [(e.type, e.event["ts"] / 1000 - T) for e in out]
    assert steps.index(("responded", 70.0)) < steps.index(("ended", 300.0))
    responded = next(e for e in out if e.type == "responded")
    reply = chatwoot_conversation(2, updated=T + 70, **conv)  # type: ignore[arg-type]
    again = [e for e in parse(p, chatwoot_message(reply, 1002, T + 70, agent=8)) if e.type == "responded"]
    assert [(e.event["event_id"], e.event["ts"]) for e in again] == [
        (responded.event["event_id"], responded.event["ts"])
    ]


def test_a_resolution_without_a_reply_gives_no_first_response():
    p = platform()
    done = chatwoot_conversation(3, created=T, updated=T + 300, assignee=8, status="resolved")
    out = parse(p, chatwoot_event("conversation_status_changed", done, status=("open", "resolved")))
    assert "responded" not in [e.type for e in out] and "ended" in [e.type for e in out]


def test_the_conversation_is_the_case_across_its_reopenings_and_the_contact_the_customer():
    p = platform()
    first = parse(p, chatwoot_event("conversation_created", chatwoot_conversation(4, created=T, contact=77)))
    assert (first[0].event["customer"], first[0].event["case_id"]) == ("chatwoot-contact-77", "chatwoot-4")
    done = chatwoot_conversation(4, created=T, updated=T + 60, assignee=8, contact=77, status="resolved")
    out = parse(p, chatwoot_event("conversation_status_changed", done, status=("open", "resolved")))
    assert next(e for e in out if e.type == "resolved").event["case_id"] == "chatwoot-4"
    again = chatwoot_conversation(4, created=T, updated=T + 600, contact=77)
    out = parse(p, chatwoot_event("conversation_status_changed", again, status=("resolved", "open")))
    offered = next(e for e in out if e.type == "offered")
    assert offered.key != first[0].key and offered.event["case_id"] == "chatwoot-4"
