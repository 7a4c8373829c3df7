"""Chatwoot's account webhooks -> ccmon chat events (the mapping table is docs/sources/chatwoot.md).

Chatwoot signs ``"{X-Chatwoot-Timestamp}.{raw body}"`` with HMAC-SHA256 under the webhook's secret
and sends the hex digest in ``X-Chatwoot-Signature`` (``sha256=`` before it in current versions;
both forms are accepted). A timestamp further than ``max_age_s`` from now is stale.

The mapping keeps almost no state: each delivery carries the whole conversation, so a delivery
that implies earlier steps (a reply on a conversation whose creation or assignment was not seen
yet) emits them too, from the conversation's own fields, with the ids those steps' own deliveries
give. The one piece of state is the current segment of a reopened conversation (its reopening
time): the deliveries after a reopening carry nothing that tells the segments apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from producers.sources import events
from producers.sources.events import SourceEvent
from producers.sources.webhooks.platform import (
    BadRequest,
    ConfigError,
    Ignored,
    Platform,
    PlatformConfig,
    Unauthorized,
    hmac_sha256_hex,
    json_object,
    same,
    timestamp,
)

__all__ = ["Chatwoot"]

LABEL = re.compile(r"[^A-Za-z0-9_.-]")
#: events that carry nothing for the contact lifecycle (acknowledged, counted as ignored)
IGNORED = (
    "message_updated",
    "contact_created",
    "contact_updated",
    "webwidget_triggered",
    "conversation_typing_on",
    "conversation_typing_off",
    "inbox_created",
    "inbox_updated",
)
#: how long a reopened conversation's segment is remembered after its last delivery (event time)
SEGMENT_RETENTION_S = 7 * 86400.0


def _label(text: str) -> str:
    return LABEL.sub("_", text.strip())[:64]


def _int_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise BadRequest(f"{what} is not an id")
    return int(value)


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of the payload, {} when absent or not an object."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _changes(doc: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``changed_attributes`` as {attribute: (previous, current)}: Chatwoot sends a list of
    one-key objects (older versions an object)."""
    raw = doc.get("changed_attributes")
    items: list[Any] = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    out: dict[str, tuple[Any, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        for name, change in item.items():
            if isinstance(change, dict):
                out[str(name)] = (change.get("previous_value"), change.get("current_value"))
    return out


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the mapping reads from Chatwoot's conversation object."""

    id: int
    inbox_id: int
    team_id: int | None
    status: str
    assignee: int | None
    contact: int | None
    created: float | None  #: ``created_at`` (current versions send it)
    first_reply: float | None  #: ``first_reply_created_at``
    updated: float  #: the time of this change: ``updated_at``, else ``timestamp`` (last activity)
    at: float = 0.0  #: when the delivery's step happened (the change, or the message): picks the segment

    @classmethod
    def of(cls, doc: Any) -> Conversation:
        if not isinstance(doc, dict):
            raise BadRequest("no conversation object")
        meta = _obj(doc, "meta")
        assignee = _obj(meta, "assignee")
        team = _obj(meta, "team")
        inbox = doc.get("inbox_id")
        contact_inbox = _obj(doc, "contact_inbox")
        sender = _obj(meta, "sender")
        contact = contact_inbox.get("contact_id") or sender.get("id")
        when = doc.get("updated_at") or doc.get("timestamp")
        if when is None:
            raise BadRequest("conversation has neither updated_at nor timestamp")
        return cls(
            id=_int_id(doc.get("id"), "conversation id"),
            inbox_id=_int_id(inbox, "inbox_id"),
            team_id=_int_id(team["id"], "team id") if team.get("id") is not None else None,
            status=str(doc.get("status") or ""),
            assignee=_int_id(assignee["id"], "assignee id") if assignee.get("id") is not None else None,
            contact=int(contact) if contact is not None and str(contact).isdigit() else None,
            created=timestamp(doc["created_at"], "created_at") if doc.get("created_at") else None,
            first_reply=(
                timestamp(doc["first_reply_created_at"], "first_reply_created_at")
                if doc.get("first_reply_created_at")
                else None
            ),
            updated=timestamp(when, "updated_at"),
            at=timestamp(when, "updated_at"),
        )


class Chatwoot(Platform):
    name = "chatwoot"
    #: Chatwoot's webhook request times out after 5 s (its WEBHOOK_TIMEOUT default)
    answer_within_s = 4.0

    def __init__(self, config: PlatformConfig) -> None:
        super().__init__(config)
        config.require_secret(self.name)
        self.source = config.source_option(self.name)
        try:
            self.max_age = float(config.option("max_age_s", str(self.max_age_s)))
        except ValueError:
            self.max_age = -1.0
        if not self.max_age > 0:
            raise ConfigError("CCMON_WEBHOOKS_CHATWOOT_MAX_AGE_S: a positive number of seconds")
        self.queue_by = config.queue_by_option(self.name)
        #: what a conversation resolved without an agent becomes (docs/sources/chatwoot.md)
        self.unanswered = config.unanswered_option(self.name)
        self.queue_names = self._names(config.option("queues", ""))
        #: conversation id -> (its reopenings' epoch seconds, sorted; the last delivery's time)
        self.segments: dict[str, tuple[list[int], float]] = {}
        #: conversation id -> its latest resolution's time (tells a reopening from a bot's hand-over)
        self.resolved: dict[str, float] = {}
        self._next_forget = 0.0

    @staticmethod
    def _names(text: str) -> dict[str, str]:
        """``CCMON_WEBHOOKS_CHATWOOT_QUEUES="inbox-1=support,team-3=billing"``: queue names for ids."""
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, name = part.partition("=")
            if not sep or not re.fullmatch(r"(inbox|team)-\d+", key) or not _label(name):
                raise ConfigError(
                    f"CCMON_WEBHOOKS_CHATWOOT_QUEUES: {part!r} is not inbox-N=NAME or team-N=NAME"
                )
            out[key] = _label(name)
        return out

    # ---- the interface ---------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        stamp = headers.get("X-Chatwoot-Timestamp", "")
        given = headers.get("X-Chatwoot-Signature", "")
        if not stamp or not given:
            raise Unauthorized("missing X-Chatwoot-Timestamp or X-Chatwoot-Signature")
        expected = hmac_sha256_hex(self.config.secret, stamp.encode() + b"." + body)
        if not same(expected, given.removeprefix("sha256=")):
            raise Unauthorized("signature does not match")
        try:
            at = float(stamp)
        except ValueError:
            raise Unauthorized("X-Chatwoot-Timestamp is not a number") from None
        if abs(now - at) > self.max_age:
            raise Unauthorized(f"stale timestamp ({now - at:.0f} s from now, limit {self.max_age:.0f} s)")

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        doc = json_object(body)
        kind = doc.get("event")
        if not isinstance(kind, str):
            raise BadRequest("no 'event' field")
        if kind == "message_created":
            return self._message(doc)
        if kind in ("conversation_created", "conversation_updated"):
            return self._conversation(doc, kind)
        if kind in ("conversation_status_changed", "conversation_resolved", "conversation_opened"):
            return self._status(doc, kind)
        if kind in IGNORED:
            raise Ignored(f"{kind}: no contact event by design")
        raise Ignored(f"unknown event {kind[:64]!r}")

    def to_state(self) -> dict[str, Any]:
        return {
            "segments": {k: [tags, last] for k, (tags, last) in self.segments.items()},
            "resolved": dict(self.resolved),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.segments = {
            k: (sorted(int(t) for t in v[0]), float(v[1])) for k, v in state.get("segments", {}).items()
        }
        self.resolved = {k: float(v) for k, v in state.get("resolved", {}).items()}

    # ---- identities --------------------------------------------------------------------------------
    def _base(self, conv: Conversation) -> str:
        return f"{self.source}-{conv.id}"

    def _contact_id(self, conv: Conversation) -> tuple[str, float | None]:
        """The contact id of the segment the delivery's step belongs to (the latest reopening at or
        before ``conv.at``, so a late delivery of an earlier segment still maps there), and the
        reopening time that started it (None: the conversation's first segment)."""
        seg = self.segments.get(str(conv.id))
        tag = max((t for t in seg[0] if t <= conv.at), default=None) if seg else None
        if tag is None:
            return self._base(conv), None
        return f"{self._base(conv)}-r{tag}", float(tag)

    def _queue(self, conv: Conversation) -> str:
        key = f"team-{conv.team_id}" if self.queue_by == "team" and conv.team_id else f"inbox-{conv.inbox_id}"
        return self.queue_names.get(key, key)

    def _customer(self, conv: Conversation) -> str | None:
        return f"{self.source}-contact-{conv.contact}" if conv.contact is not None else None

    def _agent(self, user: int) -> str:
        return f"{self.source}-agent-{user}"

    # ---- the lifecycle, step by step (each step's id is the same whichever delivery makes it) -----
    def _offered(self, conv: Conversation) -> list[SourceEvent]:
        cid, reopened = self._contact_id(conv)
        at = (
            reopened if reopened is not None else (conv.created if conv.created is not None else conv.updated)
        )
        return [
            events.contact(
                "offered",
                cid,
                at,
                f"{cid}:offered",
                channel="chat",
                queue=self._queue(conv),
                customer=self._customer(conv),
                case_id=self._base(conv),  # the conversation is the case, across its reopenings
            )
        ]

    def _answered(self, conv: Conversation, agent: int, at: float) -> list[SourceEvent]:
        cid, _ = self._contact_id(conv)
        return [
            events.contact(
                "answered", cid, at, f"{cid}:answered", channel="chat", agent_id=self._agent(agent)
            )
        ]

    def _message(self, doc: dict[str, Any]) -> list[SourceEvent]:
        sent = timestamp(doc.get("created_at"), "message created_at")
        conv = dataclasses.replace(Conversation.of(doc.get("conversation")), at=sent)
        out = self._offered(conv)
        sender = _obj(doc, "sender")
        by_agent = (
            doc.get("message_type") == "outgoing"
            and not doc.get("private")
            and sender.get("type") == "user"
            and sender.get("id") is not None
        )
        if not by_agent:
            return out  # the customer's messages, bots, notes, activity lines: nothing more
        first = self._first_reply(conv, sent)
        agent = conv.assignee if conv.assignee is not None else _int_id(sender.get("id"), "sender id")
        out += self._answered(conv, agent, first)
        cid, _ = self._contact_id(conv)
        out.append(events.contact("responded", cid, first, f"{cid}:responded", channel="chat"))
        return out

    def _conversation(self, doc: dict[str, Any], kind: str) -> list[SourceEvent]:
        conv = Conversation.of(doc)
        changes = _changes(doc)
        if kind == "conversation_created":
            out = self._offered(conv)
            if conv.assignee is not None:
                out += self._answered(conv, conv.assignee, conv.created or conv.updated)
            return out
        if "status" not in changes:
            return self._offered(conv) + self._changes_of(conv, changes)
        # a status change sent as an update maps like conversation_status_changed (the same ids);
        # with an assignment in the same update: a reopening (to open) first, then the assignment
        # in the new segment; an assignment before a resolution
        status = self._status(doc, kind)
        if changes["status"][1] == "open":
            return status + self._changes_of(conv, changes)
        return status[:1] + self._changes_of(conv, changes) + status[1:]

    def _changes_of(self, conv: Conversation, changes: dict[str, tuple[Any, Any]]) -> list[SourceEvent]:
        """The events of a conversation's queue and assignee changes (after its ``offered``)."""
        out: list[SourceEvent] = []
        cid, _ = self._contact_id(conv)
        moved = "team_id" in changes if self.queue_by == "team" else "inbox_id" in changes
        if moved:
            prev, cur = changes["team_id" if self.queue_by == "team" else "inbox_id"]
            if cur is not None and prev != cur:
                out.append(
                    events.contact(
                        "transferred",
                        cid,
                        conv.updated,
                        f"{cid}:transferred:{_int_id(cur, 'new queue id')}:{int(conv.updated)}",
                        channel="chat",
                        queue=self._queue(conv),
                    )
                )
        if "assignee_id" in changes:
            prev, cur = changes["assignee_id"]
            if cur is None:
                return out  # unassigned: the conversation stays where it is (documented)
            if prev is None:
                out += self._answered(conv, _int_id(cur, "assignee_id"), conv.updated)
            elif prev != cur:  # reassigned: a transfer to the same queue, answered by the new agent
                step = f"{cid}:reassigned:{_int_id(cur, 'assignee_id')}:{int(conv.updated)}"
                out.append(
                    events.contact(
                        "transferred", cid, conv.updated, step, channel="chat", queue=self._queue(conv)
                    )
                )
                out.append(
                    events.contact(
                        "answered",
                        cid,
                        conv.updated,
                        f"{step}:answered",
                        channel="chat",
                        agent_id=self._agent(_int_id(cur, "assignee_id")),
                    )
                )
        return out

    def _status(self, doc: dict[str, Any], kind: str) -> list[SourceEvent]:
        conv = Conversation.of(doc)
        changes = _changes(doc)
        prev = changes.get("status", (None, None))[0]
        status = "resolved" if kind == "conversation_resolved" else conv.status
        key = str(conv.id)
        ended_at = self.resolved.get(key)
        # reopened: open again after a resolution, as changed_attributes says or, when the delivery
        # carries none (conversation_opened, older versions), as the resolution seen before says;
        # an opening from pending (a bot's hand-over) is not a reopening
        reopened = status == "open" and (
            prev == "resolved" or (prev is None and ended_at is not None and ended_at < conv.updated)
        )
        if status in ("resolved", "closed") and (ended_at is None or ended_at < conv.updated):
            self.resolved[key] = conv.updated
            self.dirty = True
            self._forget(conv.updated)
        if reopened:
            self.resolved.pop(key, None)
            tag = int(conv.updated)
            tags, last = self.segments.get(key, ([], 0.0))
            if tag not in tags:
                self.segments[key] = (sorted([*tags, tag]), max(last, conv.updated))
                self.dirty = True
                self._forget(conv.updated)
            return self._offered(conv)
        out = self._offered(conv)
        if status not in ("resolved", "closed"):
            return out  # open, pending, snoozed: no lifecycle step
        cid, _ = self._contact_id(conv)
        at = conv.updated
        if conv.assignee is None and conv.first_reply is None:
            fields: dict[str, Any] = {"reason": "other"} if self.unanswered == "dequeued" else {}
            out.append(
                events.contact(self.unanswered, cid, at, f"{cid}:{self.unanswered}", channel="chat", **fields)
            )
            return out
        agent = conv.assignee
        if agent is not None:
            out += self._answered(conv, agent, self._first_reply(conv, at))
        _, reopened = self._contact_id(conv)
        if conv.first_reply is not None and (reopened is None or conv.first_reply >= reopened):
            # the first reply's own delivery may come after this one, when the worker takes no
            # first response any more (the contact ended): the step it implies, with its own id
            out.append(events.contact("responded", cid, conv.first_reply, f"{cid}:responded", channel="chat"))
        out.append(events.contact("ended", cid, at, f"{cid}:ended", channel="chat"))
        out.append(events.contact("wrapup_ended", cid, at, f"{cid}:wrapup_ended", channel="chat"))
        out.append(
            events.contact("resolved", cid, at, f"{cid}:resolved", channel="chat", case_id=self._base(conv))
        )
        return out

    def _first_reply(self, conv: Conversation, otherwise: float) -> float:
        """The segment's first agent reply: Chatwoot's ``first_reply_created_at`` belongs to the
        conversation's first segment; in a reopened one (or without it) the delivery's own time."""
        _, reopened = self._contact_id(conv)
        first = conv.first_reply
        if first is None or (reopened is not None and first < reopened):
            return otherwise
        return first

    def _forget(self, now: float) -> None:
        """Segments of conversations silent for SEGMENT_RETENTION_S: the state stays bounded.
        At most once an hour of event time (each pass walks the whole state)."""
        if now < self._next_forget:
            return
        self._next_forget = now + 3600.0
        old = [
            k for k, (tags, last) in self.segments.items() if max([last, *tags]) + SEGMENT_RETENTION_S < now
        ]
        for k in old:
            del self.segments[k]
        for k in [k for k, at in self.resolved.items() if at + SEGMENT_RETENTION_S < now]:
            del self.resolved[k]
