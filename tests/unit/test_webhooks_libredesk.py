"""libredesk's webhooks -> ccmon events (docs/sources/libredesk.md): its signature (HMAC-SHA256 of the
raw body), the mapping table, and what its pool of delivery workers does to the order: a reply
before its conversation's creation is held and follows the creation; every event is checked with
the worker's own validation."""

from __future__ import annotations

import pytest

from producers.sources.events import SourceEvent, check
from producers.sources.webhooks.libredesk import HOLD_S, Libredesk
from producers.sources.webhooks.platform import BadRequest, ConfigError, Ignored, PlatformConfig, Unauthorized
from tests.unit.helpers_webhooks import (
    LIBREDESK_SECRET,
    libredesk_conversation,
    libredesk_delivery,
    libredesk_message,
    libredesk_signed,
)

T = 1_796_000_000.0
U = "4f6c2a10-0000-4000-8000-00000000c001"
CID = f"libredesk-{U}"


def platform(**options: str) -> Libredesk:
    return Libredesk(PlatformConfig(LIBREDESK_SECRET, options))


def parse(p: Libredesk, event: str, payload: dict, delivered: float = T + 1000) -> list[SourceEvent]:
    body, headers = libredesk_signed(libredesk_delivery(event, payload, delivered))
    p.verify(headers, body, delivered)
    out = p.parse(headers, body)
    for ev in out:
        check(ev)
    return out


def brief(events: list[SourceEvent]) -> list[tuple]:
    return [(e.type, e.event["ts"] / 1000, e.event.get("queue") or e.event.get("agent_id")) for e in events]


def conv(**kw: object) -> dict:
    return libredesk_conversation(U, created=T, **kw)  # type: ignore[arg-type]


def test_the_signature_is_the_hmac_of_the_raw_body_and_nothing_else_passes():
    p = platform()
    body, headers = libredesk_signed(libredesk_delivery("conversation.created", conv(), T))
    p.verify(headers, body, T)
    p.verify({"X-Libredesk-Signature": headers["X-Libredesk-Signature"].removeprefix("sha256=")}, body, T)
    with pytest.raises(Unauthorized, match="does not match"):
        p.verify(headers, body.replace(b"Open", b"Oqen"), T)
    other_body, other = libredesk_signed(body, secret=b"wrong")
    with pytest.raises(Unauthorized, match="does not match"):
        p.verify(other, other_body, T)
    with pytest.raises(Unauthorized, match="missing"):
        p.verify({}, body, T)


def test_created_assigned_replied_resolved():
    p = platform()
    assert brief(parse(p, "conversation.created", conv())) == [("offered", T, "inbox-1")]
    got = parse(
        p,
        "conversation.assigned",
        {
            "conversation_uuid": U,
            "assigned_to": 4,
            "actor_id": 1,
            "conversation": conv(updated=T + 30, assigned_user=4),
        },
    )
    assert brief(got) == [("offered", T, "inbox-1"), ("answered", T + 30, "libredesk-agent-4")]
    got = parse(p, "message.created", libredesk_message(U, "m1", T + 45, agent=4))
    assert brief(got) == [
        ("offered", T, "inbox-1"),
        ("answered", T + 45, "libredesk-agent-4"),
        ("responded", T + 45, None),
    ]
    assert got[1].event_id == f"{CID}:answered"  # the implied answered: the assignment's own id
    done = conv(updated=T + 400, assigned_user=4, status="Resolved", first_reply=T + 45, resolved=T + 400)
    got = parse(
        p,
        "conversation.status_changed",
        {
            "conversation_uuid": U,
            "previous_status": "Open",
            "new_status": "Resolved",
            "actor_id": 4,
            "conversation": done,
        },
    )
    assert [e.type for e in got][-3:] == ["ended", "wrapup_ended", "resolved"]
    assert {e.event["ts"] for e in got[-3:]} == {(T + 400) * 1000}
    assert got[0].event["customer"] == "libredesk-contact-301" and all(e.stream == "chats" for e in got)


def test_a_reply_before_its_conversation_is_held_and_follows_the_creation():
    """Seen on a real libredesk: the delivery workers send a message before its conversation."""
    p = platform()
    assert parse(p, "message.created", libredesk_message(U, "m1", T + 20, agent=4)) == []
    assert p.dirty and p.held  # the receiver saves this before answering 2xx
    restarted = platform()
    restarted.load_state(p.to_state())
    got = parse(restarted, "conversation.created", conv())
    assert brief(got) == [
        ("offered", T, "inbox-1"),
        ("answered", T + 20, "libredesk-agent-4"),
        ("responded", T + 20, None),
    ]
    assert not restarted.held
    assert parse(restarted, "message.created", libredesk_message(U, "m1", T + 20, agent=4))[2] == got[2]


def test_a_held_reply_whose_conversation_never_comes_is_dropped_after_the_bound():
    p = platform()
    parse(p, "message.created", libredesk_message(U, "m1", T, agent=4))
    other = "4f6c2a10-0000-4000-8000-00000000c002"
    parse(p, "conversation.created", libredesk_conversation(other, created=T + HOLD_S + 1))
    assert not p.held and p.dropped == 1


def test_the_customers_messages_and_private_notes_give_no_response():
    p = platform()
    parse(p, "conversation.created", conv())
    assert [e.type for e in parse(p, "message.created", libredesk_message(U, "m1", T + 5))] == ["offered"]
    assert [
        e.type for e in parse(p, "message.created", libredesk_message(U, "m2", T + 6, agent=4, private=True))
    ] == ["offered"]
    assert (
        parse(p, "message.created", libredesk_message("4f6c2a10-0000-4000-8000-0000000000ff", "m3", T)) == []
    )


@pytest.mark.parametrize("rule, reason", [("abandoned", None), ("dequeued", "other")])
def test_closed_without_an_agent_is_abandoned_or_dequeued(rule: str, reason: str | None):
    p = platform(unanswered=rule)
    closed = conv(updated=T + 200, status="Closed")
    got = parse(
        p,
        "conversation.status_changed",
        {"conversation_uuid": U, "previous_status": "Open", "new_status": "Closed", "conversation": closed},
    )
    assert [(e.type, e.event.get("reason")) for e in got] == [("offered", None), (rule, reason)]


def test_reassignment_move_and_reopen():
    p = platform(queue_by="team")
    parse(p, "conversation.created", conv())
    parse(
        p, "conversation.assigned", {"assigned_to": 4, "conversation": conv(updated=T + 10, assigned_user=4)}
    )
    got = parse(
        p, "conversation.assigned", {"assigned_to": 5, "conversation": conv(updated=T + 60, assigned_user=5)}
    )
    assert brief(got)[1:] == [("transferred", T + 60, "inbox-1"), ("answered", T + 60, "libredesk-agent-5")]
    moved = parse(
        p,
        "conversation.assigned",
        {"assigned_to": 5, "conversation": conv(updated=T + 90, assigned_user=5, team=3)},
    )
    assert ("transferred", T + 90, "team-3") in brief(moved)
    reopened = conv(updated=T + 5000, status="Open", team=3)
    got = parse(
        p,
        "conversation.status_changed",
        {"previous_status": "Resolved", "new_status": "Open", "conversation": reopened},
    )
    assert [(e.type, e.key, e.event["ts"] / 1000, e.event["queue"]) for e in got] == [
        ("offered", f"{CID}-r{int(T + 5000)}", T + 5000, "team-3")
    ]


def test_redeliveries_are_identical_and_the_delivery_time_is_never_used():
    p = platform()
    a = parse(p, "conversation.created", conv(), delivered=T + 5)
    b = parse(p, "conversation.created", conv(), delivered=T + 3600)
    assert a == b


def test_unknown_unused_and_malformed_deliveries():
    p = platform()
    for event in ("message.updated", "conversation.tags_changed", "webhook.test", "something.new"):
        body, headers = libredesk_signed(
            {"event": event, "timestamp": "2026-12-07T05:00:00Z", "payload": {"id": 1}}
        )
        with pytest.raises(Ignored):
            p.parse(headers, body)
    with pytest.raises(Ignored, match="without its conversation"):
        parse(p, "conversation.assigned", {"conversation_uuid": U, "assigned_to": 4})
    for body, reason in (
        (b"not json", "not JSON"),
        (b'{"payload": {}}', "no 'event'"),
        (b'{"event": "conversation.created", "payload": 3}', "no 'payload'"),
        (b'{"event": "conversation.created", "payload": {"uuid": "x y"}}', "not a uuid"),
    ):
        with pytest.raises(BadRequest, match=reason):
            p.parse({}, body)


def test_bad_options():
    for options in ({"queue_by": "x"}, {"unanswered": "y"}, {"source": "a b"}):
        with pytest.raises(ConfigError):
            platform(**options)


def test_a_late_delivery_of_the_first_segment_maps_to_it_after_a_reopening():
    p = platform()
    parse(p, "conversation.created", conv())
    parse(
        p,
        "conversation.status_changed",
        {"previous_status": "Resolved", "new_status": "Open", "conversation": conv(updated=T + 900)},
    )
    done = conv(updated=T + 300, assigned_user=4, status="Resolved", first_reply=T + 45, resolved=T + 300)
    late = parse(
        p,
        "conversation.status_changed",
        {"previous_status": "Open", "new_status": "Resolved", "conversation": done},
    )
    assert {e.key for e in late} == {CID}
    reply = parse(p, "message.created", libredesk_message(U, "m9", T + 950, agent=4))
    assert {e.key for e in reply} == {f"{CID}-r{int(T + 900)}"}


def test_a_resolution_delivered_before_the_reply_carries_the_first_response():
    """The worker takes no first response after ``ended``: the resolution emits the reply's step
    from ``first_reply_at`` (same id as the reply's own delivery) before ``ended``."""
    p = platform()
    done = conv(updated=T + 300, status="Resolved", assigned_user=4, first_reply=T + 12, resolved=T + 300)
    out = parse(
        p,
        "conversation.status_changed",
        {"previous_status": "Open", "new_status": "Resolved", "conversation": done},
    )
    steps = [(e.type, e.event["ts"] / 1000 - T) for e in out]
    assert steps.index(("responded", 12.0)) < steps.index(("ended", 300.0))
    responded = next(e for e in out if e.type == "responded")
    again = [
        e
        for e in parse(p, "message.created", libredesk_message(U, "m1", T + 12, agent=4))
        if e.type == "responded"
    ]
    assert [e.event["event_id"] for e in again] == [responded.event["event_id"]]
    unreplied = conv(updated=T + 300, status="Resolved", assigned_user=4, resolved=T + 300)
    other = parse(
        platform(),
        "conversation.status_changed",
        {"previous_status": "Open", "new_status": "Resolved", "conversation": unreplied},
    )
    assert "responded" not in [e.type for e in other]


def test_the_conversation_is_the_case_and_the_contact_the_customer():
    p = platform()
    [offered] = parse(p, "conversation.created", conv(contact=55))
    assert (offered.event["customer"], offered.event["case_id"]) == ("libredesk-contact-55", CID)
    done = conv(updated=T + 300, status="Resolved", assigned_user=4, resolved=T + 300, contact=55)
    out = parse(
        p,
        "conversation.status_changed",
        {"previous_status": "Open", "new_status": "Resolved", "conversation": done},
    )
    assert next(e for e in out if e.type == "resolved").event["case_id"] == CID
