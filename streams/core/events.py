"""Decoding and validating input events (SPEC §1). Anything invalid becomes a :class:`Rejection`."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast, get_args

import orjson

from streams.config import QUEUE_NAME

__all__ = [
    "AGENT_STATES",
    "AgentEvent",
    "AgentStateName",
    "CONTACT_TYPES",
    "ContactEvent",
    "ContactType",
    "DEQUEUE_REASONS",
    "DequeueReason",
    "LOGGED_IN_STATES",
    "Reason",
    "Rejection",
    "RejectionReason",
    "STAFFED_STATES",
    "dequeue_label",
    "event_time",
    "parse_agent",
    "parse_contact",
]

# The vocabularies are Literal types, each defined once: the type checks every comparison and
# assignment where a value flows, and its tuple (get_args) is what the code iterates or validates.
#: a contact event's ``type`` (SPEC §1)
ContactType = Literal[
    "offered",
    "answered",
    "responded",
    "hold",
    "resume",
    "transferred",
    "ended",
    "wrapup_ended",
    "abandoned",
    "dequeued",
    "missed",
    "resolved",
    "survey",
]
CONTACT_TYPES: frozenset[str] = frozenset(get_args(ContactType))
#: an agent's states, in the order pages and series show them (the wallboard's JSON carries them:
#: the pages have no list of their own)
AgentStateName = Literal["available", "busy", "acw", "away", "offline"]
AGENT_STATES: Final[tuple[AgentStateName, ...]] = get_args(AgentStateName)
LOGGED_IN_STATES: Final = AGENT_STATES[:4]  #: every state but offline
STAFFED_STATES: Final = AGENT_STATES[:3]  #: serving or ready to serve a queue
MAX_ID = 128
DEQUEUE_REASON = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")
AGENT_REASON = re.compile(r"[A-Za-z0-9_. -]{1,64}\Z")
#: the ``reason`` label values of ``ccmon_contacts_dequeued_total`` (SPEC §1's five and ``other``);
#: any other valid reason counts as ``other`` (docs/kpis.md: a fixed set keeps the series bounded)
DequeueReason = Literal["timeout", "empty", "key", "withdraw", "overflow", "other"]
DEQUEUE_REASONS: Final[tuple[DequeueReason, ...]] = get_args(DequeueReason)
#: the ``reason`` of a dead letter (the values of :class:`Reason`)
RejectionReason = Literal[
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "unknown_type",
    "unknown_state",
    "future_time",
    "lifecycle",
    "queue_limit",
    "agent_limit",
]


class Reason:
    """Stable rejection reasons by name (their type: :data:`RejectionReason`): the ``reason``
    label of dead letters and the docs' vocabulary."""

    INVALID_UTF8: Final = "invalid_utf8"
    INVALID_JSON: Final = "invalid_json"
    NOT_AN_OBJECT: Final = "not_an_object"
    MISSING_FIELD: Final = "missing_field"
    INVALID_FIELD: Final = "invalid_field"
    UNKNOWN_TYPE: Final = "unknown_type"
    UNKNOWN_STATE: Final = "unknown_state"
    FUTURE_TIME: Final = "future_time"
    LIFECYCLE: Final = "lifecycle"
    QUEUE_LIMIT: Final = "queue_limit"
    AGENT_LIMIT: Final = "agent_limit"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class ContactEvent:
    event_id: str
    type: ContactType
    contact_id: str
    ts: float  #: event time, epoch seconds
    queue: str | None = None
    agent_id: str | None = None
    csat: int | None = None
    nps: int | None = None
    resolved: bool | None = None
    reason: DequeueReason | None = None  #: ``dequeued`` (absent or unknown → ``other``)
    ces: int | None = None
    #: who contacted (personal data, SPEC §2 "The customer") and the case the contact is about:
    #: optional on every type; slots keep an event without them as small as before
    customer: str | None = None
    case_id: str | None = None


@dataclass(frozen=True, slots=True)
class AgentEvent:
    event_id: str
    agent_id: str
    state: AgentStateName
    queues: tuple[str, ...]
    ts: float
    name: str | None = None
    reason: str | None = None


class _Invalid(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def decode(raw: bytes | None) -> dict[str, Any]:
    """UTF-8 JSON object or :class:`_Invalid` (NaN/Infinity are not JSON and are refused)."""
    if raw is None:
        raise _Invalid(Reason.INVALID_JSON, "empty message (no value)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        if "UTF-8" in msg or "surrogates" in msg:
            raise _Invalid(Reason.INVALID_UTF8, "value is not valid UTF-8") from None
        raise _Invalid(Reason.INVALID_JSON, f"value is not JSON: {msg[:200]}") from None
    if not isinstance(doc, dict):
        raise _Invalid(Reason.NOT_AN_OBJECT, f"value is a JSON {type(doc).__name__}, not an object")
    return doc


def _id(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if value is None:
        raise _Invalid(Reason.MISSING_FIELD, f"missing field {name!r}")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        raise _Invalid(Reason.INVALID_FIELD, f"{name!r} must be a string of 1-{MAX_ID} characters")
    return value


def _queue(value: Any, name: str) -> str:
    if not isinstance(value, str) or not QUEUE_NAME.match(value):
        raise _Invalid(Reason.INVALID_FIELD, f"{name!r} must match [A-Za-z0-9_.-]{{1,64}}")
    # one string per queue name, not one per open contact (~55 B each); CPython frees an interned
    # string with its last reference, so made-up names do not pile up
    return sys.intern(value)


def parse_ts(value: Any) -> float:
    """RFC 3339 with an offset, or integer epoch milliseconds → epoch seconds."""
    if value is None:
        raise _Invalid(Reason.MISSING_FIELD, "missing field 'ts'")
    if isinstance(value, int) and not isinstance(value, bool):
        if not -62135596800000 <= value <= 253402300799000:
            raise _Invalid(Reason.INVALID_FIELD, "'ts' epoch milliseconds out of range")
        return value / 1000.0
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
            raise _Invalid(Reason.INVALID_FIELD, "'ts' needs a UTC offset (e.g. 2026-11-23T08:00:00Z)")
    raise _Invalid(Reason.INVALID_FIELD, "'ts' must be RFC 3339 with offset or integer epoch milliseconds")


def event_time(value: Any) -> float | None:
    """The event time of an event's ``ts`` field by the rules of :func:`parse_ts`, or None when
    it has none or an invalid one (for pacing a replay, where a bad event is the worker's to reject)."""
    try:
        return parse_ts(value)
    except _Invalid:
        return None


def _check_future(ts: float, now: float, tolerance: float) -> None:
    if ts > now + tolerance:
        raise _Invalid(
            Reason.FUTURE_TIME, f"event time is {ts - now:.0f} s in the future (limit {tolerance:.0f} s)"
        )


def _optional_int(doc: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Invalid(Reason.INVALID_FIELD, f"{name!r} must be an integer {low}-{high}")
    return value


def _optional_text(doc: dict[str, Any], name: str, pattern: re.Pattern[str] | None, limit: int) -> str | None:
    """An optional string: ``pattern`` when given, else any 1-``limit`` characters."""
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not (pattern.match(value) if pattern else 1 <= len(value) <= limit):
        shape = pattern.pattern.removesuffix("\\Z") if pattern else f"1-{limit} characters"
        raise _Invalid(Reason.INVALID_FIELD, f"{name!r} must be a string of {shape}")
    return value


def dequeue_label(reason: str | None) -> DequeueReason:
    """The label a dequeue reason counts under: made-up reasons must not each make new series."""
    return reason if reason in DEQUEUE_REASONS else "other"


def _head(raw: bytes | None) -> tuple[dict[str, Any], str, Any]:
    """The decoded object, its event_id and its (present) type: common to both event kinds."""
    doc = decode(raw)
    event_id = _id(doc, "event_id")
    etype = doc.get("type")
    if etype is None:
        raise _Invalid(Reason.MISSING_FIELD, "missing field 'type'")
    return doc, event_id, etype


def parse_contact(raw: bytes | None, now: float, future_tolerance_s: float) -> ContactEvent | Rejection:
    """Validate one contact event (either topic; the channel is the topic's)."""
    try:
        doc, event_id, etype = _head(raw)
        if not isinstance(etype, str) or etype not in CONTACT_TYPES:
            raise _Invalid(Reason.UNKNOWN_TYPE, f"unknown contact event type {str(etype)[:64]!r}")
        contact_id = _id(doc, "contact_id")
        ts = parse_ts(doc.get("ts"))
        _check_future(ts, now, future_tolerance_s)
        queue = agent_id = reason = None
        csat = nps = ces = None
        resolved = None
        if etype in ("offered", "transferred"):
            if doc.get("queue") is None:
                raise _Invalid(Reason.MISSING_FIELD, f"missing field 'queue' (required for {etype})")
            queue = _queue(doc["queue"], "queue")
        elif etype in ("answered", "missed"):
            agent_id = _id(doc, "agent_id")
        elif etype == "dequeued":
            reason = dequeue_label(_optional_text(doc, "reason", DEQUEUE_REASON, 32))
        elif etype == "survey":
            csat = _optional_int(doc, "csat", 1, 5)
            nps = _optional_int(doc, "nps", 0, 10)
            ces = _optional_int(doc, "ces", 1, 7)
            resolved = doc.get("resolved")
            if resolved is not None and not isinstance(resolved, bool):
                raise _Invalid(Reason.INVALID_FIELD, "'resolved' must be true or false")
        customer = _optional_text(doc, "customer", None, MAX_ID)
        case_id = _optional_text(doc, "case_id", None, MAX_ID)
        return ContactEvent(
            event_id,
            cast(ContactType, etype),
            contact_id,
            ts,
            queue,
            agent_id,
            csat,
            nps,
            resolved,
            reason,
            ces,
            customer,
            case_id,
        )
    except _Invalid as exc:
        return exc.rejection


def parse_agent(raw: bytes | None, now: float, future_tolerance_s: float) -> AgentEvent | Rejection:
    """Validate one agent state event."""
    try:
        doc, event_id, etype = _head(raw)
        if etype != "state":
            raise _Invalid(Reason.UNKNOWN_TYPE, f"unknown agent event type {str(etype)[:64]!r}")
        agent_id = _id(doc, "agent_id")
        state = doc.get("state")
        if state is None:
            raise _Invalid(Reason.MISSING_FIELD, "missing field 'state'")
        if not isinstance(state, str) or state not in AGENT_STATES:
            raise _Invalid(Reason.UNKNOWN_STATE, f"unknown agent state {str(state)[:64]!r}")
        queues = doc.get("queues")
        if queues is None:
            raise _Invalid(Reason.MISSING_FIELD, "missing field 'queues'")
        if not isinstance(queues, list) or len(queues) > 256:
            raise _Invalid(Reason.INVALID_FIELD, "'queues' must be a list of at most 256 queue names")
        names = tuple(dict.fromkeys(_queue(q, "queues[]") for q in queues))
        name = _optional_text(doc, "name", None, MAX_ID)
        reason = _optional_text(doc, "reason", AGENT_REASON, 64)
        ts = parse_ts(doc.get("ts"))
        _check_future(ts, now, future_tolerance_s)
        return AgentEvent(event_id, agent_id, state, names, ts, name, reason)
    except _Invalid as exc:
        return exc.rejection
