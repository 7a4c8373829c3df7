"""Deliveries in the platforms' own formats, written for these tests (never copied from a sample),
and their signatures computed per each platform's documented scheme. Shared by the unit tests of
the platforms and the receiver's integration tests."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

CHATWOOT_SECRET = b"cw-test-secret-0123456789"


def iso(ts: float) -> str:
    """Rails' JSON time (``2026-12-07T08:00:01.000Z``), as Chatwoot writes ``created_at``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def chatwoot_conversation(
    conv: int,
    *,
    created: float,
    updated: float | None = None,
    inbox: int = 1,
    status: str = "open",
    assignee: int | None = None,
    contact: int = 501,
    team: int | None = None,
    first_reply: float | None = None,
) -> dict[str, Any]:
    """A conversation as Chatwoot's webhooks carry it (``push_event_data``): ids, status, meta with
    the contact and the assignee, and the times as epoch seconds."""
    meta: dict[str, Any] = {
        "sender": {"id": contact, "name": f"visitor-{contact}", "type": "contact", "email": None},
        "assignee": (
            {"id": assignee, "name": f"Agent {assignee}", "type": "user", "availability_status": "online"}
            if assignee is not None
            else None
        ),
        "hmac_verified": False,
    }
    if team is not None:
        meta["team"] = {"id": team, "name": f"team {team}"}
    at = created if updated is None else updated
    return {
        "additional_attributes": {},
        "can_reply": True,
        "channel": "Channel::WebWidget",
        "contact_inbox": {"id": contact + 1000, "contact_id": contact, "inbox_id": inbox, "source_id": "s"},
        "id": conv,
        "inbox_id": inbox,
        "messages": [],
        "labels": [],
        "meta": meta,
        "status": status,
        "unread_count": 0,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": 0,
        "first_reply_created_at": None if first_reply is None else int(first_reply),
        "waiting_since": int(created),
        "created_at": int(created),
        "updated_at": at,
        "timestamp": int(at),
    }


def chatwoot_event(kind: str, conversation: dict[str, Any], **changes: tuple[Any, Any]) -> dict[str, Any]:
    """A conversation event: the conversation itself plus ``event`` and ``changed_attributes``."""
    doc = dict(conversation)
    doc["event"] = kind
    if changes:
        doc["changed_attributes"] = [
            {name: {"previous_value": prev, "current_value": cur}} for name, (prev, cur) in changes.items()
        ]
    return doc


def chatwoot_message(
    conversation: dict[str, Any], msg_id: int, at: float, *, agent: int | None = None, private: bool = False
) -> dict[str, Any]:
    """``message_created``: from the agent ``agent`` (outgoing), else from the contact (incoming)."""
    sender = (
        {"id": agent, "name": f"Agent {agent}", "email": f"a{agent}@example.test", "type": "user"}
        if agent is not None
        else {"id": conversation["meta"]["sender"]["id"], "name": "visitor", "type": "contact"}
    )
    return {
        "event": "message_created",
        "id": msg_id,
        "content": "hello",
        "created_at": iso(at),
        "message_type": "outgoing" if agent is not None else "incoming",
        "content_type": "text",
        "private": private,
        "content_attributes": {},
        "source_id": None,
        "sender": sender,
        "inbox": {"id": conversation["inbox_id"], "name": "Support"},
        "conversation": conversation,
        "account": {"id": 1, "name": "Acme"},
    }


def chatwoot_signed(
    doc: dict[str, Any] | bytes, now: float, secret: bytes = CHATWOOT_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and Chatwoot's headers: HMAC-SHA256 of ``"{timestamp}.{body}"``, hex, ``sha256=``."""
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    stamp = str(int(now))
    digest = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-Chatwoot-Timestamp": stamp,
        "X-Chatwoot-Signature": f"sha256={digest}",
    }


LIBREDESK_SECRET = b"ld-test-secret-9876543210"


def rfc3339(ts: float) -> str:
    """Go's time.Time in JSON (RFC 3339 with nanoseconds), as libredesk writes its times."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1e9) % 10**9:09d}Z"


def libredesk_conversation(
    uuid: str,
    *,
    created: float,
    updated: float | None = None,
    inbox: int = 1,
    status: str = "Open",
    assigned_user: int | None = None,
    team: int | None = None,
    contact: int = 301,
    first_reply: float | None = None,
    resolved: float | None = None,
) -> dict[str, Any]:
    """A conversation as libredesk's JSON gives it (``models.Conversation``), the fields that matter
    and a few that do not."""
    return {
        "id": int(hashlib.sha1(uuid.encode()).hexdigest()[:5], 16),
        "created_at": rfc3339(created),
        "updated_at": rfc3339(created if updated is None else updated),
        "uuid": uuid,
        "contact_id": contact,
        "inbox_id": inbox,
        "closed_at": None,
        "resolved_at": None if resolved is None else rfc3339(resolved),
        "reference_number": "100",
        "priority": None,
        "status": status,
        "first_reply_at": None if first_reply is None else rfc3339(first_reply),
        "assigned_user_id": assigned_user,
        "assigned_team_id": team,
        "waiting_since": rfc3339(created),
        "subject": "Help",
        "inbox_name": "Web",
        "inbox_channel": "livechat",
        "contact": {
            "id": contact,
            "first_name": "Ada",
            "last_name": "",
            "email": "ada@example.test",
            "type": "contact",
        },
    }


def libredesk_message(
    conv_uuid: str, msg_uuid: str, at: float, *, agent: int | None = None, private: bool = False
) -> dict[str, Any]:
    """``message.created``'s payload (``models.Message``): from the agent ``agent``, else the contact."""
    return {
        "id": int(hashlib.sha1(msg_uuid.encode()).hexdigest()[:5], 16),
        "created_at": rfc3339(at),
        "updated_at": rfc3339(at),
        "uuid": msg_uuid,
        "type": "outgoing" if agent is not None else "incoming",
        "status": "sent" if agent is not None else "received",
        "conversation_id": 1,
        "conversation_uuid": conv_uuid,
        "content": "<p>hello</p>",
        "text_content": "hello",
        "content_type": "html",
        "private": private,
        "sender_id": agent if agent is not None else 301,
        "sender_type": "agent" if agent is not None else "contact",
        "meta": {},
        "attachments": [],
        "author": {
            "id": agent or 301,
            "first_name": "A",
            "last_name": "",
            "type": "agent" if agent else "contact",
        },
    }


def libredesk_delivery(event: str, payload: dict[str, Any], delivered: float) -> dict[str, Any]:
    """libredesk's envelope: the event, the delivery's time (1 s resolution), the payload."""
    return {
        "event": event,
        "timestamp": datetime.fromtimestamp(int(delivered), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "payload": payload,
    }


def libredesk_signed(
    doc: dict[str, Any] | bytes, secret: bytes = LIBREDESK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and libredesk's headers: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "Libredesk-Webhook/test",
        "X-Libredesk-Signature": f"sha256={digest}",
    }
