"""Deliveries of the cloud platforms, written for ccmon's tests in the platforms' documented formats
(docs/sources/twilio.md, docs/sources/amazon-connect.md), and signed or credentialed the way the
platforms do it, computed here independently of the receiver's code.

- Twilio Event Streams (webhook sink): a JSON array of CloudEvents 1.0 whose ``data`` is the
  TaskRouter event (``data.payload`` holds its fields); ``X-Twilio-Signature`` = base64(HMAC-SHA1(
  auth token, destination URL + ``bodySHA256=<hex sha256 of the body>``)).
- Amazon EventBridge API destination: the EventBridge event (``version``, ``id``, ``detail-type``,
  ``source``, ``time``, ``detail``...) as the body, the connection's API key header.
- Amazon Data Firehose HTTP endpoint: ``{"requestId", "timestamp", "records": [{"data": base64}]}``,
  ``X-Amz-Firehose-Request-Id`` and ``X-Amz-Firehose-Access-Key``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from producers.sources.events import SourceEvent

TWILIO_URL = "https://ccmon.example.net/webhooks/twilio?site=lyon"
TWILIO_TOKEN = b"0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
WORKSPACE = "WS" + "b" * 32


def event_row(o: SourceEvent, ev: dict[str, Any], t0: float, contact: str) -> tuple:
    """An emitted event as the platforms' tests compare it: (stream, agent id and state, seconds
    after ``t0``, the other fields) for an agent state, (stream, ``contact``, type, seconds, the
    other fields) for a contact event, whose key must be its contact id. ``ev`` is the event's
    fields not yet taken (the caller takes those it shows otherwise or not at all)."""
    ts = round(ev.pop("ts") / 1000 - t0, 3)
    if o.stream == "agents":
        ev.pop("type")
        return (o.stream, ev.pop("agent_id"), ev.pop("state"), ts, ev)
    assert ev.pop("contact_id") == o.key
    return (o.stream, contact, ev.pop("type"), ts, ev)


def iso(ts: float) -> str:
    """An event time as Twilio and AWS write it: ISO 8601, milliseconds, ``Z``."""
    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(round(ts * 1000)) % 1000:03d}Z"
    )


def sid(prefix: str, n: int | str) -> str:
    """A Twilio SID: two letters and 32 hex digits."""
    return prefix + hashlib.md5(f"{prefix}{n}".encode()).hexdigest()


# ---- Twilio ------------------------------------------------------------------------------------------
def tr_event(
    kind: str,
    ts: float,
    *,
    task: str = "",
    queue: str = "Support",
    channel: str = "voice",
    worker: str = "",
    reservation: str = "",
    activity: str = "",
    reason: str = "",
    n: int | str = 0,
    **payload: Any,
) -> dict[str, Any]:
    """One TaskRouter event as Event Streams delivers it (schema TaskRouter.WDSEvent)."""
    body: dict[str, Any] = {"workspace_sid": WORKSPACE, "account_sid": ACCOUNT, "eventtype": kind}
    if task:
        body |= {
            "task_sid": task,
            "task_queue_sid": sid("WQ", queue),
            "task_queue_name": queue,
            "task_channel_unique_name": channel,
            "task_attributes": json.dumps({"from": "+33100000000", "direction": "inbound"}),
            "task_assignment_status": "pending",
        }
    if worker:
        body |= {"worker_sid": worker, "worker_name": f"agent-{worker[-4:]}", "worker_attributes": "{}"}
    if reservation:
        body["reservation_sid"] = reservation
    if activity:
        body |= {"worker_activity_name": activity, "worker_activity_sid": sid("WA", activity)}
    if reason:
        body["task_canceled_reason"] = reason
    body |= payload
    stamp = iso(ts)
    return {
        "specversion": "1.0",
        "type": f"com.twilio.taskrouter.{kind}",
        "source": f"/v1/Workspaces/{WORKSPACE}",
        "id": sid("EV", f"{kind}{task}{worker}{reservation}{ts}{n}"),
        "dataschema": "https://events-schemas.twilio.com/TaskRouter.WDSEvent/4",
        "datacontenttype": "application/json",
        "time": stamp,
        "data": {
            "sid": sid("EV", f"d{kind}{task}{worker}{ts}{n}"),
            "name": "".join(p.capitalize() for p in kind.replace("-", ".").split(".")),
            "account_sid": ACCOUNT,
            "timestamp": stamp,
            "level": "INFO",
            "group": kind.split(".")[0],
            "product_name": "TaskRouter",
            "payload_type": "application/json",
            "payload": body,
        },
    }


def twilio_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


def twilio_signature(body: bytes, url: str = TWILIO_URL, token: bytes = TWILIO_TOKEN) -> str:
    """Twilio's scheme for a JSON body: the URL Twilio requests carries ``bodySHA256`` (hex)."""
    signed = url + ("&" if "?" in url else "?") + "bodySHA256=" + hashlib.sha256(body).hexdigest()
    return base64.b64encode(hmac.new(token, signed.encode(), hashlib.sha1).digest()).decode()


def twilio_headers(body: bytes, **kw: Any) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature(body, **kw)}


# ---- Amazon Connect ----------------------------------------------------------------------------------
CONNECT_KEY = b"connect-api-key-7f3a9c"
REGION, AWS_ACCOUNT = "eu-west-1", "111122223333"
INSTANCE = f"arn:aws:connect:{REGION}:{AWS_ACCOUNT}:instance/5d1b6c2e-0000-4000-8000-00000000c0de"


def uuid_of(kind: str, n: int | str) -> str:
    h = hashlib.md5(f"{kind}{n}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def queue_arn(name: str) -> str:
    return f"{INSTANCE}/queue/{uuid_of('queue', name)}"


def agent_arn(name: str) -> str:
    return f"{INSTANCE}/agent/{uuid_of('agent', name)}"


def contact_event(
    event_type: str,
    contact_id: str,
    *,
    channel: str = "VOICE",
    queue: str = "",
    queued: float | None = None,
    agent: str = "",
    connected: float | None = None,
    disconnected: float | None = None,
    reason: str = "",
    acw_end: float | None = None,
    at: float | None = None,
    initiated: float | None = None,
) -> dict[str, Any]:
    """One EventBridge event of an Amazon Connect contact event, as an API destination posts it:
    every field known about the contact so far, each with its own timestamp."""
    detail: dict[str, Any] = {
        "eventType": event_type,
        "contactId": contact_id,
        "initialContactId": contact_id,
        "channel": channel,
        "instanceArn": INSTANCE,
        "initiationMethod": "INBOUND",
        "initiationTimestamp": iso(initiated if initiated is not None else (queued or at or 0.0) - 5),
    }
    if queue:
        detail["queueInfo"] = {"queueArn": queue_arn(queue), "queueType": "STANDARD"}
        if queued is not None:
            detail["queueInfo"]["enqueueTimestamp"] = iso(queued)
    if agent:
        detail["agentInfo"] = {"agentArn": agent_arn(agent)}
        if connected is not None:
            detail["agentInfo"]["connectedToAgentTimestamp"] = iso(connected)
        if acw_end is not None and disconnected is not None:
            detail["agentInfo"] |= {
                "afterContactWorkStartTimestamp": iso(disconnected),
                "afterContactWorkEndTimestamp": iso(acw_end),
                "afterContactWorkDuration": int(acw_end - disconnected),
            }
    if disconnected is not None:
        detail["disconnectTimestamp"] = iso(disconnected)
    if reason:
        detail["disconnectReason"] = reason
    when = (
        at
        if at is not None
        else max(t for t in (queued, connected, disconnected, acw_end, 0.0) if t is not None)
    )
    return {
        "version": "0",
        "id": uuid_of("eb", f"{event_type}{contact_id}{when}"),
        "detail-type": "Amazon Connect Contact Event",
        "source": "aws.connect",
        "account": AWS_ACCOUNT,
        "time": iso(when).replace(".000Z", "Z"),
        "region": REGION,
        "resources": [f"{INSTANCE}/contact/{contact_id}"],
        "detail": detail,
    }


def connect_body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def connect_headers(key: bytes = CONNECT_KEY, header: str = "x-api-key") -> dict[str, str]:
    """The API destination's connection, API key authorization: its header, its value verbatim."""
    return {"Content-Type": "application/json; charset=utf-8", header: key.decode()}


def agent_event(
    event_type: str,
    agent: str,
    ts: float,
    *,
    status: str = "Available",
    status_type: str = "ROUTABLE",
    queues: tuple[str, ...] = ("Support",),
    contacts: list[dict[str, Any]] | None = None,
    previous_contacts: list[dict[str, Any]] | None = None,
    n: int | str = 0,
) -> dict[str, Any]:
    """One agent event stream record (Version 2019-05-25)."""

    def snapshot(cs: list[dict[str, Any]]) -> dict[str, Any]:
        inbound: list[dict[str, Any]] = [
            {"ARN": queue_arn(q), "Name": q, "Channels": ["VOICE", "CHAT"]} for q in queues
        ]
        inbound.append(
            {"ARN": f"{INSTANCE}/queue/agent/{uuid_of('agent', agent)}", "Name": None, "Channels": ["VOICE"]}
        )
        return {
            "AgentStatus": {
                "ARN": f"{INSTANCE}/agent-state/{uuid_of('st', status)}",
                "Name": status,
                "StartTimestamp": iso(ts),
                "Type": status_type,
            },
            "Configuration": {
                "AgentHierarchyGroups": None,
                "FirstName": agent.capitalize(),
                "LastName": "Agent",
                "RoutingProfile": {
                    "ARN": f"{INSTANCE}/routing-profile/{uuid_of('rp', 1)}",
                    "Name": "Basic Routing Profile",
                    "Concurrency": [
                        {"Channel": "VOICE", "MaximumSlots": 1},
                        {"Channel": "CHAT", "MaximumSlots": 2},
                    ],
                    "DefaultOutboundQueue": {
                        "ARN": queue_arn(queues[0]) if queues else "",
                        "Name": queues[0] if queues else "",
                    },
                    "InboundQueues": inbound,
                },
                "Username": agent,
            },
            "Contacts": cs,
            "NextAgentStatus": None,
        }

    return {
        "AWSAccountId": AWS_ACCOUNT,
        "AgentARN": agent_arn(agent),
        "CurrentAgentSnapshot": snapshot(contacts or []),
        "EventId": uuid_of("ae", f"{event_type}{agent}{ts}{n}"),
        "EventTimestamp": iso(ts),
        "EventType": event_type,
        "InstanceARN": INSTANCE,
        "PreviousAgentSnapshot": snapshot(previous_contacts or []),
        "Version": "2019-05-25",
    }


def snapshot_contact(
    contact_id: str, state: str, queue: str, queued: float, since: float, channel: str = "VOICE"
) -> dict[str, Any]:
    return {
        "Channel": channel,
        "ConnectedToAgentTimestamp": iso(since)
        if state in ("CONNECTED", "CONNECTED_ONHOLD", "ENDED")
        else None,
        "ContactId": contact_id,
        "InitialContactId": contact_id,
        "InitiationMethod": "INBOUND",
        "Queue": {"ARN": queue_arn(queue), "Name": queue},
        "QueueTimestamp": iso(queued),
        "State": state,
        "StateStartTimestamp": iso(since),
    }


def firehose_body(records: list[dict[str, Any]], request_id: str = "", ts: float = 0.0) -> bytes:
    """Amazon Data Firehose's HTTP endpoint request: each record's data is one agent event, base64."""
    return json.dumps(
        {
            "requestId": request_id or uuid_of("fh", len(records)),
            "timestamp": int(ts * 1000),
            "records": [{"data": base64.b64encode(json.dumps(r).encode()).decode()} for r in records],
        }
    ).encode()


def firehose_headers(request_id: str, key: bytes = CONNECT_KEY, gzip: bool = False) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Amz-Firehose-Protocol-Version": "1.0",
        "X-Amz-Firehose-Request-Id": request_id,
        "X-Amz-Firehose-Source-Arn": f"arn:aws:firehose:{REGION}:{AWS_ACCOUNT}:deliverystream/connect-agents",
        "X-Amz-Firehose-Access-Key": key.decode(),
    } | ({"Content-Encoding": "gzip"} if gzip else {})
