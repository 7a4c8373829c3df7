"""Amazon Connect -> ccmon events: contact events as an EventBridge API destination posts them, the
agent event stream as Amazon Data Firehose's HTTP endpoint delivery posts it; the credentials, the
mapping table of docs/sources/amazon-connect.md, duplicates, reordered and late deliveries, bad input.

Deliveries are built by ``tests/unit/helpers_cloud.py`` in AWS's documented formats; the expected
events are written by hand.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from producers.sources.events import SourceEvent, check
from producers.sources.webhooks.amazon_connect import AmazonConnect
from producers.sources.webhooks.platform import BadRequest, ConfigError, Ignored, PlatformConfig, Unauthorized
from tests.unit.helpers import at
from tests.unit.helpers_cloud import (
    CONNECT_KEY,
    agent_event,
    connect_body,
    connect_headers,
    contact_event,
    event_row,
    firehose_body,
    firehose_headers,
    snapshot_contact,
    uuid_of,
)

T0 = at("10:00:00")
C1, C2 = uuid_of("contact", 1), uuid_of("contact", 2)
ALICE, BOB = uuid_of("agent", "alice"), uuid_of("agent", "bob")
SUPPORT = uuid_of("queue", "Support")


def platform(**options: str) -> AmazonConnect:
    return AmazonConnect(PlatformConfig(CONNECT_KEY, options))


def deliver(p: AmazonConnect, event: dict[str, Any]) -> list[SourceEvent]:
    body, headers = connect_body(event), connect_headers()
    p.verify(headers, body, now=T0)
    out = p.parse(headers, body)
    for ev in out:
        check(ev)
    return out


def firehose(p: AmazonConnect, records: list[dict[str, Any]], request_id: str = "req-1") -> list[SourceEvent]:
    body, headers = firehose_body(records, request_id), firehose_headers(request_id)
    p.verify(headers, body, now=T0)
    out = p.parse(headers, body)
    for ev in out:
        check(ev)
    return out


def rows(out: list[SourceEvent]) -> list[tuple]:
    found: list[tuple] = []
    for o in out:
        ev = dict(o.event)
        eid = ev.pop("event_id")
        found.append(event_row(o, ev, T0, eid))
    return found


def voice_call(cid: str = C1, channel: str = "VOICE") -> list[dict[str, Any]]:
    """Queued at T0, Alice connected at +12 s, disconnected at +190 s, ACW ended at +220 s."""
    kw: dict[str, Any] = {"channel": channel, "queue": "Support", "queued": T0}
    return [
        contact_event("INITIATED", cid, channel=channel, at=T0 - 8),
        contact_event("QUEUED", cid, **kw),
        contact_event("CONNECTED_TO_AGENT", cid, agent="alice", connected=T0 + 12, **kw),
        contact_event("DISCONNECTED", cid, agent="alice", connected=T0 + 12, disconnected=T0 + 190, **kw),
        contact_event(
            "COMPLETED", cid, agent="alice", connected=T0 + 12, disconnected=T0 + 190, acw_end=T0 + 220, **kw
        ),
    ]


# ---- credentials ---------------------------------------------------------------------------------
def test_the_connection_api_key_header_is_checked_in_constant_time_and_exactly():
    body = connect_body(voice_call()[1])
    p = platform()
    p.verify(connect_headers(), body, now=T0)
    with pytest.raises(Unauthorized, match="no x-api-key"):
        p.verify({}, body, now=T0)
    with pytest.raises(Unauthorized, match="not the connection's API key"):
        p.verify(connect_headers(key=CONNECT_KEY + b"x"), body, now=T0)
    named = platform(api_key_header="X-Ccmon-Key")
    named.verify(connect_headers(header="X-Ccmon-Key"), body, now=T0)
    with pytest.raises(Unauthorized):
        named.verify(connect_headers(), body, now=T0)


def test_basic_auth_connections():
    p = platform(auth="basic", username="eventbridge")
    good = "Basic " + base64.b64encode(b"eventbridge:" + CONNECT_KEY).decode()
    p.verify({"Authorization": good}, b"{}", now=T0)
    for bad in (
        "",
        "Basic " + base64.b64encode(b"other:" + CONNECT_KEY).decode(),
        "Bearer " + CONNECT_KEY.decode(),
    ):
        with pytest.raises(Unauthorized):
            p.verify({"Authorization": bad}, b"{}", now=T0)


def test_the_firehose_access_key_is_checked():
    body = firehose_body([agent_event("LOGIN", "alice", T0)], "r1")
    p = platform()
    p.verify(firehose_headers("r1"), body, now=T0)
    with pytest.raises(Unauthorized, match="Access-Key"):
        p.verify(firehose_headers("r1", key=b"nope"), body, now=T0)
    headers = firehose_headers("r1")
    del headers["X-Amz-Firehose-Access-Key"]
    with pytest.raises(Unauthorized, match="no X-Amz-Firehose-Access-Key"):
        p.verify(headers, body, now=T0)


def test_configuration_is_checked():
    with pytest.raises(ConfigError, match="empty"):
        AmazonConnect(PlatformConfig(b"", {}))
    with pytest.raises(ConfigError, match="api_key or basic"):
        platform(auth="sigv4")
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        platform(queues="Support")
    with pytest.raises(ConfigError, match="voice, chat or skip"):
        platform(channels="TASK=email")


# ---- contact events ---------------------------------------------------------------------------------
def test_a_voice_contact_in_order_maps_row_by_row():
    p = platform(queues=f"{SUPPORT}=Support")
    out = [deliver(p, ev) for ev in voice_call()]
    assert out[0] == []  # INITIATED: not in a queue yet
    assert [rows(o) for o in out[1:]] == [
        [("calls", f"connect:{C1}:offered", "offered", 0.0, {"queue": "Support"})],
        [
            ("calls", f"connect:{C1}:offered", "offered", 0.0, {"queue": "Support"}),
            ("calls", f"connect:{C1}:answered", "answered", 12.0, {"agent_id": ALICE}),
        ],
        [
            ("calls", f"connect:{C1}:offered", "offered", 0.0, {"queue": "Support"}),
            ("calls", f"connect:{C1}:answered", "answered", 12.0, {"agent_id": ALICE}),
            ("calls", f"connect:{C1}:ended", "ended", 190.0, {}),
        ],
        [
            ("calls", f"connect:{C1}:offered", "offered", 0.0, {"queue": "Support"}),
            ("calls", f"connect:{C1}:answered", "answered", 12.0, {"agent_id": ALICE}),
            ("calls", f"connect:{C1}:ended", "ended", 190.0, {}),
            ("calls", f"connect:{C1}:wrapup_ended", "wrapup_ended", 220.0, {}),
        ],
    ]


def test_without_a_name_the_queue_is_its_id():
    [ev] = deliver(platform(), voice_call()[1])
    assert ev.event["queue"] == SUPPORT


@pytest.mark.parametrize("channel, stream", [("VOICE", "calls"), ("CHAT", "chats"), ("TASK", "chats")])
def test_the_channel_picks_the_topic(channel, stream):
    out = deliver(platform(), voice_call(channel=channel)[4])
    assert {o.stream for o in out} == {stream}


def test_a_channel_can_be_left_out():
    assert deliver(platform(channels="TASK=skip"), voice_call(channel="TASK")[4]) == []


@pytest.mark.parametrize(
    "reason, etype, extra",
    [
        ("CUSTOMER_DISCONNECT", "abandoned", {}),
        ("", "abandoned", {}),
        ("CONTACT_FLOW_DISCONNECT", "dequeued", {}),
        ("EXPIRED", "dequeued", {"reason": "timeout"}),
    ],
)
def test_a_contact_that_leaves_the_queue_without_an_agent(reason, etype, extra):
    ev = contact_event("DISCONNECTED", C1, queue="Support", queued=T0, disconnected=T0 + 35, reason=reason)
    out = deliver(platform(), ev)
    assert rows(out)[1:] == [("calls", f"connect:{C1}:left", etype, 35.0, extra)]


def test_completed_without_acw_ends_the_wrapup_at_the_disconnect():
    ev = contact_event(
        "COMPLETED", C1, queue="Support", queued=T0, agent="alice", connected=T0 + 4, disconnected=T0 + 60
    )
    assert rows(deliver(platform(), ev))[-1][2:4] == ("wrapup_ended", 60.0)


def test_contacts_that_never_queued_give_nothing():
    outbound = contact_event("DISCONNECTED", C2, agent="alice", connected=T0, disconnected=T0 + 30)
    assert deliver(platform(), outbound) == []
    for etype in ("INITIATED", "CONNECTED_TO_SYSTEM", "CONTACT_DATA_UPDATED"):
        assert deliver(platform(), contact_event(etype, C1, queue="Support", queued=T0)) == []


# ---- duplicates, reordering, late deliveries ------------------------------------------------------------
def test_any_order_gives_the_same_steps_with_the_same_ids_and_times():
    """Each delivery carries the contact's story so far: the union of what any order emits is the
    in-order contact, and every repeat has an id already seen (a duplicate in the worker)."""
    calls = voice_call()
    in_order = {(o.event_id, o.encode()) for ev in calls for o in deliver(platform(), ev)}
    for order in ([4, 3, 2, 1, 0], [3, 1, 4, 0, 2], [4], [3, 4]):
        p = platform()
        got = [o for i in order for o in deliver(p, calls[i])]
        assert {(o.event_id, o.encode()) for o in got} <= in_order
        # the last-step delivery alone already rebuilds everything before it, exactly
        assert {o.event_id for o in got} == {o.event_id for o in deliver(platform(), calls[max(order)])}


def test_a_redelivery_is_the_same_events():
    ev = voice_call()[4]
    assert [o.event for o in deliver(platform(), ev)] == [o.event for o in deliver(platform(), ev)]


# ---- agent event stream through Firehose -----------------------------------------------------------------
def test_agent_states_from_the_agent_event_stream():
    p = platform(queues=f"{SUPPORT}=Support")
    records = [
        agent_event("LOGIN", "alice", T0 - 60, status="Offline", status_type="OFFLINE"),
        agent_event("STATE_CHANGE", "alice", T0 - 30),
        agent_event(
            "STATE_CHANGE",
            "alice",
            T0 + 12,
            contacts=[snapshot_contact(C1, "CONNECTED", "Support", T0, T0 + 12)],
        ),
        agent_event(
            "STATE_CHANGE",
            "alice",
            T0 + 190,
            contacts=[snapshot_contact(C1, "ENDED", "Support", T0, T0 + 190)],
        ),
        agent_event("STATE_CHANGE", "alice", T0 + 300, status="Lunch", status_type="CUSTOM"),
        agent_event("HEART_BEAT", "alice", T0 + 420, status="Lunch", status_type="CUSTOM"),
        agent_event("LOGOUT", "alice", T0 + 600, status="Lunch", status_type="CUSTOM"),
    ]
    out = firehose(p, records)
    assert [(r[1], r[2], r[3], r[4].get("reason"), r[4]["queues"], r[4]["name"]) for r in rows(out)] == [
        (ALICE, "offline", -60.0, "Offline", ["Support"], "alice"),
        (ALICE, "available", -30.0, None, ["Support"], "alice"),
        (ALICE, "busy", 12.0, None, ["Support"], "alice"),
        (ALICE, "acw", 190.0, None, ["Support"], "alice"),
        (ALICE, "away", 300.0, "Lunch", ["Support"], "alice"),
        (ALICE, "offline", 600.0, "Logout", ["Support"], "alice"),
    ]
    assert {o.event_id for o in out} == {
        f"connect:{r['EventId']}" for r in records if r["EventType"] != "HEART_BEAT"
    }


def test_a_contact_the_agent_let_ring_is_a_missed_offer():
    ringing = [snapshot_contact(C1, "CONNECTING", "Support", T0, T0 + 2)]
    missed = [snapshot_contact(C1, "MISSED", "Support", T0, T0 + 17)]
    out = firehose(
        platform(), [agent_event("STATE_CHANGE", "bob", T0 + 17, contacts=missed, previous_contacts=ringing)]
    )
    assert [r[:4] for r in rows(out)] == [
        ("agents", BOB, "away", 17.0),
        ("calls", f"connect:{C1}:offered", "offered", 0.0),
        ("calls", f"connect:{C1}:{BOB}:{int((T0 + 17) * 1000)}:missed", "missed", 17.0),
    ]
    assert out[2].event["agent_id"] == BOB


def test_the_firehose_answer_echoes_the_request_id():
    p = platform()
    headers = firehose_headers("4f1e-req")
    answer = p.respond(headers, [])
    doc = json.loads(answer.body)
    assert (answer.status, answer.content_type, doc["requestId"]) == (200, "application/json", "4f1e-req")
    assert isinstance(doc["timestamp"], int) and doc["timestamp"] > 1_700_000_000_000
    err = p.error_response(headers, 401, "bad key")
    assert err is not None and json.loads(err.body)["errorMessage"] == "bad key"
    assert json.loads(err.body)["requestId"] == "4f1e-req" and err.status == 401
    assert p.respond(connect_headers(), []).body == b'{"ok":true}'
    assert p.error_response(connect_headers(), 401, "x") is None


def test_a_gzip_firehose_body_is_inflated_within_a_bound():
    records = [agent_event("STATE_CHANGE", "alice", T0)]
    body = gzip.compress(firehose_body(records, "r9"))
    out = platform().parse(firehose_headers("r9", gzip=True), body)
    assert [o.event["state"] for o in out] == ["available"]
    p = platform()
    p.max_inflated = 1000
    bomb = gzip.compress(b'{"records": [' + b" " * 100_000 + b"]}")
    with pytest.raises(BadRequest, match="inflates beyond"):
        p.parse(firehose_headers("r9", gzip=True), bomb)
    with pytest.raises(BadRequest, match="not"):
        p.parse(firehose_headers("r9", gzip=True), b"plain")


# ---- bad and unknown input ---------------------------------------------------------------------------------
def test_other_detail_types_and_event_types_are_acknowledged_and_counted():
    p = platform()
    lens = {"detail-type": "Contact Lens Analysis State Change", "source": "aws.connect", "detail": {}}
    with pytest.raises(Ignored):
        p.parse(connect_headers(), connect_body(lens))
    with pytest.raises(Ignored):
        deliver(p, contact_event("AGENT_WHISPER", C1, queue="Support", queued=T0))
    assert p.ignored == {"Contact Lens Analysis State Change": 1, "AGENT_WHISPER": 1}


@pytest.mark.parametrize(
    "body, why",
    [
        (b"{oops", "not JSON"),
        (b"[]", "not an EventBridge event"),
        (json.dumps({"detail-type": "Amazon Connect Contact Event", "detail": "x"}).encode(), "detail"),
        (
            json.dumps(
                {"detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "QUEUED"}}
            ).encode(),
            "contactId",
        ),
    ],
)
def test_malformed_contact_events_are_bad_requests(body, why):
    with pytest.raises(BadRequest, match=why):
        platform().parse(connect_headers(), body)


def test_a_queued_event_without_any_time_is_a_bad_request():
    ev = contact_event("QUEUED", C1, queue="Support")
    del ev["time"]
    with pytest.raises(BadRequest, match="enqueueTimestamp"):
        platform().parse(connect_headers(), connect_body(ev))


@pytest.mark.parametrize(
    "body, why",
    [
        (b'{"requestId": "r", "timestamp": 1}', "records"),
        (b'{"requestId": "r", "records": [{"data": 5}]}', "no data"),
        (b'{"requestId": "r", "records": [{"data": "%%%"}]}', "base64"),
        (
            b'{"requestId": "r", "records": [{"data": "' + base64.b64encode(b"[1]") + b'"}]}',
            "not an agent event",
        ),
        (
            b'{"requestId": "r", "records": [{"data": "'
            + base64.b64encode(b'{"EventType": "LOGIN"}')
            + b'"}]}',
            "EventId",
        ),
    ],
)
def test_malformed_firehose_deliveries_are_bad_requests(body, why):
    with pytest.raises(BadRequest, match=why):
        platform().parse(firehose_headers("r"), body)


# ---- the customer (SPEC §1, issue 24 §5) -----------------------------------------------------------
def test_the_customer_is_the_contacts_customer_endpoint_when_the_event_carries_it():
    p = platform()
    ev = contact_event("QUEUED", C1, queue="Support", queued=T0)
    assert "customer" not in deliver(p, ev)[0].event  # not in the event: none, nothing made up
    ev["detail"]["customerEndpoint"] = {"address": "+33612345678", "type": "TELEPHONE_NUMBER"}
    assert deliver(p, ev)[0].event["customer"] == "+33612345678"
    for nobody in ("anonymous", "", "Restricted"):
        ev["detail"]["customerEndpoint"] = {"address": nobody, "type": "TELEPHONE_NUMBER"}
        assert "customer" not in deliver(p, ev)[0].event, nobody
