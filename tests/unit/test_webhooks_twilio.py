"""Twilio TaskRouter (Event Streams webhook sink) -> ccmon events: the signature, the mapping table of
docs/sources/twilio.md row by row, duplicates, reordered and late deliveries, bad input.

Deliveries are built by ``tests/unit/helpers_cloud.py`` in Event Streams' format and signed there
with Twilio's scheme; the expected events are written by hand.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from producers.sources.events import SourceEvent, check
from producers.sources.webhooks.platform import BadRequest, ConfigError, Ignored, PlatformConfig, Unauthorized
from producers.sources.webhooks.twilio import Twilio
from tests.unit.helpers import at
from tests.unit.helpers_cloud import (
    TWILIO_TOKEN,
    TWILIO_URL,
    event_row,
    sid,
    tr_event,
    twilio_body,
    twilio_headers,
)

T0 = at("10:00:00")
TASK = sid("WT", 1)
ALICE, BOB = sid("WK", "alice"), sid("WK", "bob")
RES1, RES2 = sid("WR", 1), sid("WR", 2)


def platform(**options: str) -> Twilio:
    return Twilio(PlatformConfig(TWILIO_TOKEN, {"url": TWILIO_URL, **options}))


def deliver(p: Twilio, *events: dict[str, Any]) -> list[SourceEvent]:
    body = twilio_body(list(events))
    p.verify(twilio_headers(body), body, now=T0)
    out = p.parse(twilio_headers(body), body)
    for ev in out:
        check(ev)  # the worker's own validation accepts every event built
    return out


def rows(out: list[SourceEvent]) -> list[tuple]:
    """(stream, type or state, seconds after T0, the event's other fields but the customer) per
    event (the customer has its own tests: test_the_customer_is_the_tasks_from_attribute...)."""
    found: list[tuple] = []
    for o in out:
        ev = dict(o.event)
        ev.pop("event_id")
        ev.pop("customer", None)
        found.append(event_row(o, ev, T0, o.key))
    return found


def lifecycle(task: str = TASK, channel: str = "voice", queue: str = "Support") -> list[dict[str, Any]]:
    """A voice task: queued, rung at Bob who lets it time out, accepted by Alice, wrapped up, done."""
    kw: dict[str, Any] = {"task": task, "channel": channel, "queue": queue}
    return [
        tr_event("task.created", T0, **kw),
        tr_event("task-queue.entered", T0 + 0.5, **kw),
        tr_event("reservation.created", T0 + 1, worker=BOB, reservation=RES1, **kw),
        tr_event("reservation.timeout", T0 + 16, worker=BOB, reservation=RES1, **kw),
        tr_event("reservation.accepted", T0 + 20, worker=ALICE, reservation=RES2, **kw),
        tr_event("task.wrapup", T0 + 200, **kw),
        tr_event("reservation.wrapup", T0 + 200, worker=ALICE, reservation=RES2, **kw),
        tr_event("task.completed", T0 + 230, **kw),
        tr_event("reservation.completed", T0 + 230, worker=ALICE, reservation=RES2, **kw),
    ]


# ---- the signature ----------------------------------------------------------------------------------
def test_a_delivery_signed_with_the_auth_token_over_url_and_body_hash_passes():
    body = twilio_body(lifecycle()[:2])
    platform().verify(twilio_headers(body), body, now=T0)


@pytest.mark.parametrize(
    "headers, body_change, why",
    [
        ({}, b"", "no X-Twilio-Signature"),
        ({"X-Twilio-Signature": "AAAA"}, b"", "does not match"),
        (None, b" ", "does not match"),  # the body changed after signing
    ],
)
def test_a_missing_or_wrong_signature_is_unauthorized(headers, body_change, why):
    body = twilio_body(lifecycle()[:2])
    signed = twilio_headers(body) if headers is None else headers
    with pytest.raises(Unauthorized, match=why):
        platform().verify(signed, body + body_change, now=T0)


def test_a_signature_made_with_another_token_or_url_is_unauthorized():
    body = twilio_body(lifecycle()[:2])
    p = platform()
    with pytest.raises(Unauthorized):
        p.verify(twilio_headers(body, token=b"another-token"), body, now=T0)
    with pytest.raises(Unauthorized):
        p.verify(twilio_headers(body, url=TWILIO_URL.replace("lyon", "paris")), body, now=T0)
    # the hash Twilio appends is the body's: a signature over the bare URL is not accepted
    import base64
    import hmac

    bare = base64.b64encode(hmac.new(TWILIO_TOKEN, TWILIO_URL.encode(), hashlib.sha1).digest()).decode()
    with pytest.raises(Unauthorized):
        p.verify({"X-Twilio-Signature": bare}, body, now=T0)


def test_configuration_is_checked():
    with pytest.raises(ConfigError, match="url"):
        Twilio(PlatformConfig(TWILIO_TOKEN, {}))
    with pytest.raises(ConfigError, match="bodySHA256"):
        Twilio(PlatformConfig(TWILIO_TOKEN, {"url": TWILIO_URL + "&bodySHA256=x"}))
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        platform(activities="Lunch")
    with pytest.raises(ConfigError, match="not one of"):
        platform(activities="Lunch=eating")
    with pytest.raises(ConfigError, match="auth token"):
        Twilio(PlatformConfig(b"", {"url": TWILIO_URL}))


# ---- the mapping table --------------------------------------------------------------------------
def test_a_voice_task_in_order_maps_row_by_row():
    out = deliver(platform(), *lifecycle())
    assert (
        rows(out)
        == [
            ("calls", TASK, "offered", 0.5, {"queue": "Support"}),
            ("calls", TASK, "missed", 16.0, {"agent_id": BOB}),
            ("calls", TASK, "answered", 20.0, {"agent_id": ALICE}),
            ("agents", ALICE, "busy", 20.0, {"queues": ["Support"], "name": "agent-" + ALICE[-4:]}),
            ("calls", TASK, "ended", 200.0, {}),
            ("agents", ALICE, "acw", 200.0, {"queues": ["Support"], "name": "agent-" + ALICE[-4:]}),
            ("calls", TASK, "ended", 200.0, {}),  # the reservation's wrap-up: the same id, a duplicate
            ("calls", TASK, "wrapup_ended", 230.0, {}),
            ("agents", ALICE, "available", 230.0, {"queues": ["Support"], "name": "agent-" + ALICE[-4:]}),
            ("calls", TASK, "wrapup_ended", 230.0, {}),
        ]
    )
    ids = [o.event_id for o in out if o.stream == "calls"]
    assert ids == [
        f"twilio:{TASK}:offered",
        f"twilio:{TASK}:{RES1}:missed",
        f"twilio:{TASK}:answered",
        f"twilio:{TASK}:ended",
        f"twilio:{TASK}:ended",
        f"twilio:{TASK}:wrapup_ended",
        f"twilio:{TASK}:wrapup_ended",
    ]


def test_the_channel_comes_from_the_task_channel():
    out = deliver(platform(), *lifecycle(channel="chat"))
    assert {o.stream for o in out if o.stream != "agents"} == {"chats"}
    sms = deliver(
        platform(voice_channels="voice,callback"), *lifecycle(task=sid("WT", 2), channel="callback")
    )
    assert {o.stream for o in sms if o.stream != "agents"} == {"calls"}


def test_a_rejected_reservation_is_a_missed_offer():
    out = deliver(
        platform(),
        tr_event("task-queue.entered", T0, task=TASK),
        tr_event("reservation.rejected", T0 + 3, task=TASK, worker=BOB, reservation=RES1),
    )
    assert rows(out)[1] == ("calls", TASK, "missed", 3.0, {"agent_id": BOB})


@pytest.mark.parametrize(
    "events, expected",
    [
        # the caller hung up while waiting: Flex cancels the task
        ([("task.canceled", {"reason": "hangup"})], [("abandoned", {})]),
        # the task's TTL ran out: the system gave up
        ([("task.canceled", {"reason": "Task TTL Exceeded"})], [("dequeued", {"reason": "timeout"})]),
        # the workflow's last step timed out, then TaskRouter cancels: one wait end, the first
        (
            [("workflow.timeout", {}), ("task.canceled", {"reason": "Workflow Timeout"})],
            [("dequeued", {"reason": "timeout"}), ("dequeued", {"reason": "timeout"})],
        ),
        ([("workflow.skipped", {})], [("dequeued", {})]),
    ],
)
def test_a_task_that_leaves_without_an_agent(events, expected):
    p = platform()
    deliveries = [tr_event("task-queue.entered", T0, task=TASK)]
    deliveries += [tr_event(k, T0 + 40 + i, task=TASK, **kw) for i, (k, kw) in enumerate(events)]
    out = deliver(p, *deliveries)
    assert [(r[2], r[4]) for r in rows(out)[1:]] == expected
    assert {o.event_id for o in out[1:]} == {f"twilio:{TASK}:left"}


def test_a_move_to_another_queue_is_a_transfer_while_waiting():
    p = platform()
    out = deliver(
        p,
        tr_event("task-queue.entered", T0, task=TASK, queue="Tier 1"),
        tr_event("task-queue.timeout", T0 + 30, task=TASK, queue="Tier 1"),
        tr_event("task-queue.moved", T0 + 30, task=TASK, queue="Tier 1"),
        tr_event("task-queue.entered", T0 + 30, task=TASK, queue="Everyone"),
        tr_event(
            "reservation.accepted", T0 + 45, task=TASK, queue="Everyone", worker=ALICE, reservation=RES1
        ),
    )
    assert [r[2:5] for r in rows(out) if r[0] == "calls"] == [
        ("offered", 0.0, {"queue": "Tier_1"}),
        ("transferred", 30.0, {"queue": "Everyone"}),
        ("answered", 45.0, {"agent_id": ALICE}),
    ]


# ---- agent states ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "activity, state, reason",
    [
        ("Available", "available", None),
        ("Offline", "offline", "Offline"),
        ("Unavailable", "away", "Unavailable"),
        ("Break", "away", "Break"),
        ("Training (room 2)", "away", "Training _room 2_"),  # not in the table: away, named
    ],
)
def test_worker_activities_map_to_agent_states(activity, state, reason):
    out = deliver(platform(), tr_event("worker.activity.update", T0, worker=ALICE, activity=activity))
    [ev] = out
    assert (ev.stream, ev.key, ev.event["state"], ev.event.get("reason")) == ("agents", ALICE, state, reason)
    assert ev.event_id.startswith("twilio:EV")


def test_the_activity_table_is_configurable():
    p = platform(activities="Lunch=away; Coaching=busy, Available=available")
    [lunch] = deliver(p, tr_event("worker.activity.update", T0, worker=ALICE, activity="Lunch"))
    [coach] = deliver(p, tr_event("worker.activity.update", T0 + 5, worker=ALICE, activity="Coaching"))
    assert (lunch.event["state"], lunch.event["reason"], coach.event["state"]) == ("away", "Lunch", "busy")


def test_an_agent_away_stays_away_while_a_task_of_theirs_wraps_up():
    p = platform()
    deliver(p, tr_event("worker.activity.update", T0 - 60, worker=ALICE, activity="Available"))
    deliver(p, *lifecycle()[:5])
    [away] = deliver(p, tr_event("worker.activity.update", T0 + 100, worker=ALICE, activity="Break"))
    out = deliver(p, *lifecycle()[5:7])
    assert away.event["state"] == "away"
    assert [o.event["state"] for o in out if o.stream == "agents"] == []  # still away: nothing new


def test_task_events_alone_free_the_agent_and_a_late_wrapup_does_not_bring_acw_back():
    p = platform()
    evs = lifecycle()
    out = (
        deliver(p, evs[1], evs[4]) + deliver(p, evs[7]) + deliver(p, evs[5])
    )  # no reservation.wrapup/completed
    assert [(r[1], r[2], r[3]) for r in rows(out) if r[0] == "agents"] == [
        (ALICE, "busy", 20.0),
        (ALICE, "available", 230.0),
    ]
    assert [r[2] for r in rows(out) if r[0] == "calls"] == ["offered", "answered", "ended", "wrapup_ended"]


# ---- duplicates, reordering, late deliveries ------------------------------------------------------------
def test_a_redelivery_gives_the_same_event_ids():
    events = lifecycle()
    first = deliver(platform(), *events)
    p = platform()
    again = deliver(p, *events) + deliver(p, *events)
    assert [o.event for o in again[: len(first)]] == [o.event for o in first]
    assert {o.event_id for o in again[len(first) :] if o.stream != "agents"} <= {o.event_id for o in first}


def test_an_answer_delivered_before_the_queue_entry_builds_the_offer_with_its_own_id():
    p = platform()
    early = deliver(
        p,
        tr_event(
            "reservation.accepted", T0 + 20, task=TASK, worker=ALICE, reservation=RES1, task_age_in_queue=20
        ),
    )
    late = deliver(p, tr_event("task-queue.entered", T0, task=TASK))
    assert [(o.event["type"], o.event["ts"] / 1000 - T0) for o in early if o.stream == "calls"] == [
        ("offered", 0.0),
        ("answered", 20.0),
    ]
    assert [o.event_id for o in late] == [f"twilio:{TASK}:offered"]  # a duplicate in the worker


def test_without_the_age_in_queue_an_early_step_waits_for_the_queue_entry():
    p = platform()
    early = deliver(p, tr_event("reservation.timeout", T0 + 25, task=TASK, worker=BOB, reservation=RES1))
    assert [o for o in early if o.stream == "calls"] == []  # held: when it was offered is not known yet
    late = deliver(p, tr_event("task-queue.entered", T0 + 10, task=TASK))
    assert [(o.event["type"], o.event["ts"] / 1000 - T0) for o in late] == [
        ("offered", 10.0),
        ("missed", 25.0),
    ]


def test_a_queue_entry_that_never_comes_is_built_at_the_bound_from_the_held_step():
    p = platform(hold_s="60")
    deliver(p, tr_event("task.canceled", T0 + 40, task=TASK, reason="hangup"))
    out = deliver(p, tr_event("worker.activity.update", T0 + 101, worker=ALICE, activity="Available"))
    assert [(o.event["type"], o.event["ts"] / 1000 - T0) for o in out if o.stream == "calls"] == [
        ("offered", 40.0),
        ("abandoned", 40.0),
    ]
    assert p.released == {"abandoned": 1}


def test_a_missed_offer_delivered_after_the_answer_is_dropped_and_counted():
    p = platform()
    deliver(p, tr_event("task-queue.entered", T0, task=TASK))
    deliver(p, tr_event("reservation.accepted", T0 + 20, task=TASK, worker=ALICE, reservation=RES2))
    assert deliver(p, tr_event("reservation.timeout", T0 + 16, task=TASK, worker=BOB, reservation=RES1)) == []
    assert p.dropped == {"missed offer delivered after the answer": 1}


def test_a_held_ring_out_goes_before_the_answer_that_frees_it():
    p = platform()
    assert deliver(p, tr_event("reservation.timeout", T0 + 16, task=TASK, worker=BOB, reservation=RES1)) == []
    out = deliver(
        p,
        tr_event(
            "reservation.accepted", T0 + 20, task=TASK, worker=ALICE, reservation=RES2, task_age_in_queue=20
        ),
    )
    assert [(o.event["type"], o.event["ts"] / 1000 - T0) for o in out if o.stream == "calls"] == [
        ("offered", 0.0),
        ("missed", 16.0),
        ("answered", 20.0),
    ]


def test_a_completion_delivered_before_the_wrapup_is_held_until_it_arrives():
    p = platform()
    evs = lifecycle()
    deliver(p, *evs[:5])
    assert [o for o in deliver(p, evs[7]) if o.stream == "calls"] == []  # held: ended not seen yet
    out = deliver(p, evs[5])
    assert [(o.event["type"], o.event["ts"] / 1000 - T0) for o in out if o.stream == "calls"] == [
        ("ended", 200.0),
        ("wrapup_ended", 230.0),
    ]


def test_a_delivery_answered_503_and_delivered_again_gives_what_it_released_again():
    """The receiver moved the platform on (a held completion was released by the wrap-up), then
    Kafka did not acknowledge in time: Twilio delivers the wrap-up again, which must bring back
    everything it gave, although the platform already counts it as sent."""
    p = platform()
    evs = lifecycle()
    deliver(p, *evs[:5])
    deliver(p, evs[7])  # held
    first = [o.event_id for o in deliver(p, evs[5]) if o.stream == "calls"]
    again = [o.event_id for o in deliver(p, evs[5]) if o.stream == "calls"]
    assert first == [f"twilio:{TASK}:ended", f"twilio:{TASK}:wrapup_ended"]
    assert set(first) <= set(again) and again[0] == f"twilio:{TASK}:offered"  # the whole story, in order


def test_held_events_survive_a_restart_in_the_saved_state():
    p = platform()
    evs = lifecycle()
    deliver(p, *evs[:5])
    deliver(p, evs[7])  # held
    q = platform()
    q.load_state(p.to_state())
    out = deliver(q, evs[5])
    assert [o.event["type"] for o in out if o.stream == "calls"] == ["ended", "wrapup_ended"]


def test_an_event_held_longer_than_the_bound_is_released_as_it_is():
    p = platform(hold_s="600")
    evs = lifecycle()
    deliver(p, *evs[:5])
    deliver(p, evs[7])  # completed, its wrap-up never comes
    other = sid("WT", 9)
    assert [o.event["type"] for o in deliver(p, tr_event("task-queue.entered", T0 + 829, task=other))] == [
        "offered"
    ]
    out = deliver(p, tr_event("task-queue.entered", T0 + 831, task=sid("WT", 10)))
    assert [(o.key, o.event["type"]) for o in out] == [(sid("WT", 10), "offered"), (TASK, "wrapup_ended")]
    assert p.released == {"wrapup_ended": 1}


def test_a_batch_is_applied_in_event_time_order():
    evs = lifecycle()
    shuffled = [evs[i] for i in (8, 4, 6, 1, 3, 7, 0, 5, 2)]
    in_order = deliver(platform(), *evs)
    assert [o.event for o in deliver(platform(), *shuffled)] == [o.event for o in in_order]


# ---- bad and unknown input ---------------------------------------------------------------------
def test_unknown_types_are_acknowledged_and_counted():
    p = platform()
    body = twilio_body(
        [tr_event("activity.created", T0), {"type": "com.twilio.messaging.message.sent", "id": "x"}]
    )
    with pytest.raises(Ignored):
        p.parse({}, body)
    out = deliver(p, tr_event("task-queue.entered", T0, task=TASK), tr_event("task-channel.created", T0))
    assert [o.event["type"] for o in out] == ["offered"]
    assert p.ignored == {
        "activity.created": 1,
        "com.twilio.messaging.message.sent": 1,
        "task-channel.created": 1,
    }


@pytest.mark.parametrize(
    "body, why",
    [
        (b"{not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'[{"type": "com.twilio.taskrouter.task.canceled"}]', "no CloudEvents type or id"),
        (b'[{"type": "com.twilio.taskrouter.task.canceled", "id": "EV1", "data": 3}]', "no data"),
    ],
)
def test_malformed_deliveries_are_bad_requests(body, why):
    with pytest.raises(BadRequest, match=why):
        platform().parse({}, body)


def test_a_task_event_without_its_task_or_time_is_a_bad_request():
    bad = tr_event("task.canceled", T0, task=TASK)
    del bad["data"]["payload"]["task_sid"]
    with pytest.raises(BadRequest, match="task_sid"):
        platform().parse({}, twilio_body([bad]))
    untimed = tr_event("task.canceled", T0, task=TASK)
    untimed["data"]["timestamp"] = "yesterday"
    del untimed["time"]
    with pytest.raises(BadRequest, match="time"):
        platform().parse({}, twilio_body([untimed]))


# ---- the customer and the case (SPEC §1, issue 24 §5) ----------------------------------------------
def offered_of(out: list[SourceEvent]) -> dict[str, Any]:
    return next(o.event for o in out if o.stream == "calls" and o.event["type"] == "offered")


def test_the_customer_is_the_tasks_from_attribute_and_a_withheld_caller_is_none():
    """Flex's voice tasks carry the caller in ``from``; Twilio spells a withheld caller as keypad
    digits (+266696687 is ANONYMOUS) or a word: those name nobody."""
    ev = offered_of(deliver(platform(), tr_event("task-queue.entered", T0, task=TASK)))
    assert ev["customer"] == "+33100000000" and "case_id" not in ev
    for nobody in ("+266696687", "anonymous", "+7378742833", ""):
        attrs = json.dumps({"from": nobody, "direction": "inbound"})
        ev = offered_of(
            deliver(platform(), tr_event("task-queue.entered", T0, task=TASK, task_attributes=attrs))
        )
        assert "customer" not in ev, nobody


def test_the_customer_and_case_attributes_are_configurable_and_nested():
    p = platform(customer_attributes="customers.customer_id, from", case_attribute="crm.ticket")
    attrs = json.dumps({"from": "web-visitor", "customers": {"customer_id": "C-42"}, "crm": {"ticket": 7781}})
    ev = offered_of(deliver(p, tr_event("task-queue.entered", T0, task=TASK, task_attributes=attrs)))
    assert (ev["customer"], ev["case_id"]) == ("C-42", "7781")
    other = json.dumps({"from": "web-visitor"})  # the first name absent: the next one
    ev = offered_of(deliver(p, tr_event("task-queue.entered", T0, task=sid("WT", 9), task_attributes=other)))
    assert ev["customer"] == "web-visitor" and "case_id" not in ev


def test_an_offer_built_at_the_bound_and_a_restart_keep_the_customer():
    p = platform(hold_s="60")
    deliver(p, tr_event("task.canceled", T0 + 40, task=TASK, reason="hangup"))
    restarted = platform(hold_s="60")
    restarted.load_state(json.loads(json.dumps(p.to_state())))
    out = deliver(restarted, tr_event("worker.activity.update", T0 + 101, worker=ALICE, activity="Available"))
    assert offered_of(out)["customer"] == "+33100000000"
