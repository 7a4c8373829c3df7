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

TWILIO_URL = "https://ccmon.example.net/webhooks/twilio?site=lyon"
TWILIO_TOKEN = b"0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
WORKSPACE = "WS" + "b" * 32


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
