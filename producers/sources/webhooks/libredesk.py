"""libredesk's webhooks -> ccmon chat events (the mapping table is docs/sources/libredesk.md).

libredesk signs the raw body with HMAC-SHA256 under the webhook's secret (``X-Libredesk-Signature:
sha256=<hex>``); it sends no timestamp and no delivery id, so there is no staleness check (a
replayed delivery gives the same events: duplicates). The envelope is ``{"event", "timestamp",
"payload"}``, where ``timestamp`` is the delivery's own time (1 s resolution): it is never used.

libredesk delivers from a pool of workers without retries, so deliveries overtake each other; a
message's payload carries its conversation's uuid but not the conversation (no inbox, no creation
time). A message on a conversation not seen yet is therefore held in the platform's state (saved
before the 2xx) until a delivery carrying the conversation arrives, then its events follow the
conversation's ``offered``. Held messages older than ``HOLD_S`` of event time are dropped and
counted (``dropped``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from producers.sources import events
from producers.sources.events import SourceEvent
from producers.sources.webhooks.platform import (
    BadRequest,
    Ignored,
    Platform,
    PlatformConfig,
    Unauthorized,
    hmac_sha256_hex,
    json_object,
    same,
    timestamp,
)

__all__ = ["Libredesk"]

IGNORED = ("message.updated", "conversation.tags_changed", "conversation.unassigned", "webhook.test")
#: a message waits this long (event time, after the newest time seen) for its conversation
HOLD_S = 600.0
MAX_HELD = 10_000
#: conversations are remembered this long after their last delivery (event time)
RETENTION_S = 7 * 86400.0
UUID = re.compile(r"[A-Za-z0-9-]{1,64}")
ENDED = ("Resolved", "Closed")


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _uuid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not UUID.fullmatch(value):
        raise BadRequest(f"{what} is not a uuid")
    return value


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _opt_time(doc: dict[str, Any], key: str) -> float | None:
    value = doc.get(key)
    return timestamp(value, key) if value else None


class Libredesk(Platform):
    name = "libredesk"
    #: libredesk's HTTP client gives up after its configured timeout (3 s for the response headers)
    answer_within_s = 2.5

    def __init__(self, config: PlatformConfig) -> None:
        super().__init__(config)
        config.require_secret(self.name)
        self.source = config.source_option(self.name)
        self.queue_by = config.queue_by_option(self.name)
        self.unanswered = config.unanswered_option(self.name)
        #: uuid -> what the mapping knows of the conversation (see ``_remember``)
        self.convs: dict[str, dict[str, Any]] = {}
        #: uuid -> agent replies held until the conversation is known: [ts, agent id, message uuid]
        self.held: dict[str, list[list[Any]]] = {}
        self.newest = 0.0
        self._at = 0.0  #: the time of the step being mapped (picks its segment)
        self.dropped = 0  #: held messages given up on (their conversation never came)
        self.dropped_full = 0  #: agent replies not held because MAX_HELD were held already
        self.held_total = 0  #: agent replies held for a conversation not seen yet
        self.released = 0  #: held replies sent once their conversation came

    # ---- the interface ---------------------------------------------------------------------------
    def steps(self) -> Mapping[tuple[str, str], int]:
        return {
            ("held", "agent reply before its conversation"): self.held_total,
            ("released", "conversation came"): self.released,
            ("dropped", "conversation never came"): self.dropped,
            ("dropped", "hold full"): self.dropped_full,
        }

    def held_now(self) -> int:
        return sum(map(len, self.held.values()))

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        given = headers.get("X-Libredesk-Signature", "")
        if not given:
            raise Unauthorized("missing X-Libredesk-Signature")
        if not same(hmac_sha256_hex(self.config.secret, body), given.removeprefix("sha256=")):
            raise Unauthorized("signature does not match")

    def parse(self, headers: Mapping[str, str], body: bytes) -> list[SourceEvent]:
        doc = json_object(body)
        kind, payload = doc.get("event"), doc.get("payload")
        if not isinstance(kind, str):
            raise BadRequest("no 'event' field")
        if kind in IGNORED:
            raise Ignored(f"{kind}: no contact event by design")
        if not isinstance(payload, dict):
            if kind in (
                "conversation.created",
                "conversation.assigned",
                "conversation.status_changed",
                "message.created",
            ):
                raise BadRequest("no 'payload' object")
            raise Ignored(f"unknown event {kind[:64]!r}")
        if kind == "conversation.created":
            out = self._remember(payload)
            return out + self._release(payload["uuid"])
        if kind == "conversation.assigned":
            return self._assigned(payload)
        if kind == "conversation.status_changed":
            return self._status(payload)
        if kind == "message.created":
            return self._message(payload)
        raise Ignored(f"unknown event {kind[:64]!r}")

    def to_state(self) -> dict[str, Any]:
        return {"convs": self.convs, "held": self.held, "newest": self.newest}

    def load_state(self, state: dict[str, Any]) -> None:
        self.convs = {str(k): dict(v) for k, v in state.get("convs", {}).items()}
        self.held = {str(k): [list(m) for m in v] for k, v in state.get("held", {}).items()}
        self.newest = float(state.get("newest", 0.0))

    # ---- conversations -----------------------------------------------------------------------------
    def _queue_of(self, conv: dict[str, Any]) -> str:
        inbox, team = _opt_int(conv.get("inbox_id")), _opt_int(conv.get("assigned_team_id"))
        if inbox is None:
            raise BadRequest("conversation has no inbox_id")
        return f"team-{team}" if self.queue_by == "team" and team else f"inbox-{inbox}"

    def _remember(self, conv: dict[str, Any]) -> list[SourceEvent]:
        """Take what a conversation object says (creation, queue, contact) and give its ``offered``
        (the same event whichever delivery carries the conversation), then a ``transferred`` when
        its queue is not the segment's any more (moved to another inbox or team)."""
        uuid = _uuid(conv.get("uuid"), "conversation uuid")
        created = timestamp(conv.get("created_at"), "created_at")
        updated = _opt_time(conv, "updated_at") or created
        queue = self._queue_of(conv)
        known = self.convs.get(uuid, {})
        contact = _opt_int(conv.get("contact_id"))
        entry = {
            "created": created,
            "queue": known.get("queue", queue),  # the segment's queue: a move is a transfer
            "customer": f"{self.source}-contact-{contact}" if contact else known.get("customer"),
            "segs": known.get("segs", []),  #: reopenings' epoch seconds, sorted
            "agent": known.get("agent"),
            "last": max(float(known.get("last", 0.0)), updated),
        }
        if entry != known:
            self.convs[uuid] = entry
            self.dirty = True
        self._at = updated
        self._seen(updated)
        out = [self._offered(uuid)]
        if queue != entry["queue"]:
            cid = self._cid(uuid)
            out.append(
                events.contact(
                    "transferred",
                    cid,
                    updated,
                    f"{cid}:transferred:{queue}:{int(updated)}",
                    channel="chat",
                    queue=queue,
                )
            )
            entry["queue"] = queue
        return out

    def _seg(self, uuid: str) -> int:
        """The segment the delivery's step belongs to: the latest reopening at or before its time
        (``_at``), 0 for the first; a late delivery of an earlier segment still maps there."""
        return max((t for t in self.convs[uuid]["segs"] if t <= self._at), default=0)

    def _cid(self, uuid: str) -> str:
        seg = self._seg(uuid)
        return f"{self.source}-{uuid}" + (f"-r{seg}" if seg else "")

    def _offered(self, uuid: str) -> SourceEvent:
        c, cid, seg = self.convs[uuid], self._cid(uuid), self._seg(uuid)
        at = float(seg) if seg else float(c["created"])
        return events.contact(
            "offered",
            cid,
            at,
            f"{cid}:offered",
            channel="chat",
            queue=c["queue"],
            customer=c["customer"],
            case_id=f"{self.source}-{uuid}",  # the conversation is the case, across its reopenings
        )

    def _answered(self, uuid: str, agent: int, at: float) -> list[SourceEvent]:
        cid = self._cid(uuid)
        c = self.convs[uuid]
        if c.get("agent") is None:
            c["agent"] = agent
            self.dirty = True
        return [
            events.contact(
                "answered",
                cid,
                at,
                f"{cid}:answered",
                channel="chat",
                agent_id=f"{self.source}-agent-{agent}",
            )
        ]

    def _assigned(self, p: dict[str, Any]) -> list[SourceEvent]:
        agent = _opt_int(p.get("assigned_to"))
        conv = _obj(p, "conversation")
        if agent is None:
            raise BadRequest("assigned_to is not an agent id")
        if not conv:
            raise Ignored("conversation.assigned without its conversation (libredesk before v0.8): no time")
        out = self._remember(conv)
        uuid = conv["uuid"]
        at = timestamp(conv.get("updated_at"), "updated_at")
        previous = self.convs[uuid].get("agent")
        cid = self._cid(uuid)
        if previous is None or previous == agent:
            out += self._answered(uuid, agent, at)
        else:  # reassigned: a transfer within the queue, answered by the new agent
            step = f"{cid}:reassigned:{agent}:{int(at)}"
            out.append(
                events.contact("transferred", cid, at, step, channel="chat", queue=self.convs[uuid]["queue"])
            )
            out.append(
                events.contact(
                    "answered",
                    cid,
                    at,
                    f"{step}:answered",
                    channel="chat",
                    agent_id=f"{self.source}-agent-{agent}",
                )
            )
            self.convs[uuid]["agent"] = agent
            self.dirty = True
        return out + self._release(uuid)

    def _status(self, p: dict[str, Any]) -> list[SourceEvent]:
        conv = _obj(p, "conversation")
        if not conv:
            raise Ignored("conversation.status_changed without its conversation: no time")
        new, old = str(p.get("new_status") or ""), str(p.get("previous_status") or "")
        uuid = _uuid(conv.get("uuid"), "conversation uuid")
        if new == "Open" and old in ENDED:  # reopened: a new segment from the reopening
            at = timestamp(conv.get("updated_at"), "updated_at")
            self._remember(conv)
            c = self.convs[uuid]
            if int(at) not in c["segs"]:
                c.update(segs=sorted([*c["segs"], int(at)]), agent=None, last=at, queue=self._queue_of(conv))
                self.dirty = True
            return [self._offered(uuid)]
        out = self._remember(conv) + self._release(uuid)
        if new not in ENDED:
            return out  # Open, Replied, Snoozed: no lifecycle step
        at = _opt_time(conv, "resolved_at" if new == "Resolved" else "closed_at") or timestamp(
            conv.get("updated_at"), "updated_at"
        )
        c, cid = self.convs[uuid], self._cid(uuid)
        agent = c.get("agent") or _opt_int(conv.get("assigned_user_id"))
        first = _opt_time(conv, "first_reply_at")
        if agent is None and first is None:
            fields: dict[str, Any] = {"reason": "other"} if self.unanswered == "dequeued" else {}
            out.append(
                events.contact(self.unanswered, cid, at, f"{cid}:{self.unanswered}", channel="chat", **fields)
            )
            return out
        if agent is not None:
            out += self._answered(uuid, agent, first if first is not None else at)
        if first is not None and first >= self._seg(uuid):
            # the reply's own delivery may come after this one, when the worker takes no first
            # response any more (the contact ended): the step it implies, with its own id
            out.append(events.contact("responded", cid, first, f"{cid}:responded", channel="chat"))
        out.append(events.contact("ended", cid, at, f"{cid}:ended", channel="chat"))
        out.append(events.contact("wrapup_ended", cid, at, f"{cid}:wrapup_ended", channel="chat"))
        if new == "Resolved":
            out.append(
                events.contact(
                    "resolved", cid, at, f"{cid}:resolved", channel="chat", case_id=f"{self.source}-{uuid}"
                )
            )
        return out

    # ---- messages ------------------------------------------------------------------------------------
    def _message(self, m: dict[str, Any]) -> list[SourceEvent]:
        uuid = _uuid(m.get("conversation_uuid"), "conversation_uuid")
        at = timestamp(m.get("created_at"), "message created_at")
        self._at = at
        self._seen(at)
        meta = m.get("meta") if isinstance(m.get("meta"), dict) else {}
        by_agent = (
            m.get("type") == "outgoing"
            and m.get("sender_type") == "agent"
            and not m.get("private")
            and not (isinstance(meta, dict) and (meta.get("is_automated") or meta.get("is_csat")))
        )
        agent = _opt_int(m.get("sender_id"))
        if not by_agent or agent is None:
            return [self._offered(uuid)] if uuid in self.convs else []
        if uuid not in self.convs:  # the conversation is not known yet: hold the reply for it
            held = self.held.setdefault(uuid, [])
            mid = str(m.get("uuid") or m.get("id"))
            if any(h[2] == mid for h in held):
                return []
            if self.held_now() < MAX_HELD:
                held.append([at, agent, mid])
                self.held_total += 1
                self.dirty = True
            else:
                self.dropped_full += 1
            return []
        return self._replied(uuid, at, agent)

    def _replied(self, uuid: str, at: float, agent: int) -> list[SourceEvent]:
        self._at = at
        cid = self._cid(uuid)
        out = [self._offered(uuid)]
        out += self._answered(uuid, self.convs[uuid].get("agent") or agent, at)
        out.append(events.contact("responded", cid, at, f"{cid}:responded", channel="chat"))
        return out

    def _release(self, uuid: str) -> list[SourceEvent]:
        """The replies held for a conversation that is now known, earliest first."""
        held = self.held.pop(uuid, [])
        if held:
            self.dirty = True
        out: list[SourceEvent] = []
        for at, agent, _ in sorted(held):
            out += self._replied(uuid, float(at), int(agent))[1:]
        self.released += len(held)
        return out

    def _seen(self, at: float) -> None:
        """Event time moves on: drop held replies and conversations past their bounds."""
        if at <= self.newest:
            return
        self.newest = at
        for uuid in [u for u, h in self.held.items() if all(float(x[0]) + HOLD_S < at for x in h)]:
            self.dropped += len(self.held.pop(uuid))
            self.dirty = True
        for uuid in [u for u, c in self.convs.items() if float(c["last"]) + RETENTION_S < at]:
            del self.convs[uuid]
            self.dirty = True
