"""The one place where a source builds ccmon events (SPEC §1), typed, and checked the worker's way.

Every source (Asterisk's queue_log, the webhook platforms) turns its platform's records into
:class:`SourceEvent` values with the builders below, so the field names, the time format (integer
epoch milliseconds) and the optional fields (``customer``, ``case_id``) are written once.
:func:`check` runs the worker's own validation (``streams.core.events.parse_contact`` /
``parse_agent``) on the encoded value: a source whose tests call it cannot build an event the worker
would dead-letter without a test failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.core.events import AgentStateName, ContactType, Rejection, parse_agent, parse_contact

__all__ = [
    "Channel",
    "InvalidEvent",
    "SourceEvent",
    "Stream",
    "agent_state",
    "check",
    "contact",
    "ms",
]

#: the input topic kinds (``Settings.input_topics``' keys): contact events go to the channel's topic
Stream = Literal["calls", "chats", "agents"]
Channel = Literal["voice", "chat"]
_TOPIC: dict[Channel, Stream] = {"voice": "calls", "chat": "chats"}


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event for the input topics: ``stream`` names the topic kind, ``key`` the message key
    (the contact id or the agent id: one key, one partition, so a contact's events keep their order)."""

    stream: Stream
    key: str
    event: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(self.event)

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])


class InvalidEvent(ValueError):
    """A built event that the worker would reject: a bug in the source, never bad input."""


def ms(ts: float) -> int:
    """Event time as SPEC's integer epoch milliseconds (no float rounding in the worker)."""
    return int(round(ts * 1000))


def contact(
    etype: ContactType | Literal["responded", "resolved"],
    contact_id: str,
    ts: float,
    event_id: str,
    *,
    channel: Channel = "voice",
    queue: str | None = None,
    agent_id: str | None = None,
    customer: str | None = None,
    case_id: str | None = None,
    **fields: Any,
) -> SourceEvent:
    """A contact event. ``customer`` and ``case_id`` are added only when known (SPEC: optional);
    ``fields`` carries the type's own optional fields (``reason``, ``hangup``, ``ring_ms``...)."""
    ev: dict[str, Any] = {"event_id": event_id, "type": etype, "contact_id": contact_id, "ts": ms(ts)}
    if queue is not None:
        ev["queue"] = queue
    if agent_id is not None:
        ev["agent_id"] = agent_id
    ev.update(fields)
    if customer:
        ev["customer"] = customer
    if case_id:
        ev["case_id"] = case_id
    return SourceEvent(_TOPIC[channel], contact_id, ev)


def agent_state(
    agent_id: str,
    state: AgentStateName,
    queues: list[str],
    ts: float,
    event_id: str,
    *,
    reason: str | None = None,
    name: str | None = None,
) -> SourceEvent:
    ev: dict[str, Any] = {
        "event_id": event_id,
        "type": "state",
        "agent_id": agent_id,
        "state": state,
        "queues": list(queues),
        "ts": ms(ts),
    }
    if reason:
        ev["reason"] = reason
    if name:
        ev["name"] = name
    return SourceEvent("agents", agent_id, ev)


def check(ev: SourceEvent, now: float | None = None) -> SourceEvent:
    """``ev`` if the worker's validation accepts it, else :class:`InvalidEvent` with its reason.
    ``now`` defaults to the event's own time (a source's tests use fixed past times)."""
    raw = ev.encode()
    at = ev.event["ts"] / 1000.0 if now is None else now
    parsed = parse_agent(raw, at, 0.0) if ev.stream == "agents" else parse_contact(raw, at, 0.0)
    if isinstance(parsed, Rejection):
        raise InvalidEvent(f"{ev.event.get('type')} {ev.key!r}: {parsed.reason}: {parsed.detail}")
    if parsed.event_id != ev.event_id:
        raise InvalidEvent(f"{ev.key!r}: the event id changed in validation")
    return ev
