"""Contact and agent lifecycles (SPEC §1): events in, facts out. Pure and deterministic.

The rules decided here, beyond SPEC (docs/kpis.md explains each):
- an event whose time is before the contact's previous lifecycle event is a lifecycle error
  (it would make a negative duration); a survey must not be before ``ended``;
- the ACW timeout is driven by event time: a contact ended at E completes with ACW = 0 (at E)
  once its partition's watermark passes E + timeout, or when a ``wrapup_ended`` arrives later
  than E + timeout; a ``wrapup_ended`` after that completion is accepted and changes nothing;
  an agent's latest event by event time wins (an older one is accepted and changes nothing);
- one survey per contact; a second one is a lifecycle error;
- ``missed`` needs a waiting contact and leaves it waiting; ``dequeued`` ends the wait for good,
  like ``abandoned``: no event may follow it, a survey neither (the contact was never handled);
- an agent's ``name`` is kept until an event brings another (a display name does not vanish
  because one event left it out); its ``reason`` belongs to the state and goes with it;
- ``responded``: the first one of a segment, while it waits or is handled, is its first response,
  ``responded.ts − offered.ts`` of the segment, for its queue (a chat agent may reply before the
  platform assigns the chat: the contact keeps waiting, no answer is made up); any later one,
  or one after ``ended``, is accepted and changes nothing, in any order; after ``abandoned`` or
  ``dequeued`` it is a lifecycle error like any other event;
- ``resolved`` is accepted in any phase, at any time, any number of times, and changes no KPI
  yet: it neither moves the order of the lifecycle (``last``) nor needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, get_args

from streams.core.events import AgentEvent, ContactEvent, Reason, Rejection
from streams.core.facts import IN_ACW, ON_HOLD, TALKING, Fact, Kind

__all__ = [
    "AgentState",
    "ContactState",
    "ENDED",
    "Outcome",
    "PHASES",
    "Phase",
    "W_DECIDED",
    "W_ENDED",
    "W_ENDED_OFFSET",
    "W_IDS",
    "W_PARTITION",
    "W_PHASE",
    "W_SEEN",
    "apply_agent",
    "apply_contact",
    "complete_by_timeout",
]

#: phase of the contact's current segment, as a contact record holds it (one letter: a record is
#: kept per open contact)
Phase = Literal["W", "H", "E", "D", "A", "Q"]
PHASES: Final[tuple[Phase, ...]] = get_args(Phase)
WAITING: Final = "W"
HANDLING: Final = "H"
ENDED: Final = "E"  #: ended, wrap-up pending
DONE: Final = "D"  #: handling completed (counted as handled)
ABANDONED: Final = "A"
DEQUEUED: Final = "Q"  #: left the queue without an agent and without hanging up

#: the 0.0 that every contact record's unset times share (ContactState.to_wire); not written as
#: the literal, which mypyc would inline and box afresh at each use
_ZERO: Final[object] = float(0)

#: how many recent event ids an agent remembers to tell duplicates from new events
AGENT_EVENT_IDS = 32


@dataclass(slots=True)
class ContactState:
    partition: int
    channel: str
    queue: str
    phase: Phase
    offered: float  #: start of the current segment's wait
    last: float  #: time of the latest lifecycle event (surveys excluded)
    seen: float  #: time of the latest event of any kind: retention counts from here
    answered: float = 0.0
    hold_start: float | None = None
    hold_total: float = 0.0
    ended: float = 0.0
    surveyed: bool = False
    ids: list[str] = field(default_factory=list)
    ended_offset: int = -1  #: source offset of ``ended``: identifies the ACW-timeout fact
    agent: str | None = None  #: who answered the current segment (its per-agent facts go to them)
    #: source offset of the latest event decided for this contact, accepted or rejected: a replay
    #: after a crash skips events at or below it instead of deciding them again against a state
    #: that has moved on (an event rejected for arriving before its predecessor would now fit)
    decided: int = -1
    #: the current segment had its first response (``responded``): a later one changes nothing
    responded: bool = False
    #: the customer's keyed hash and the case, from the first event that carried them (written
    #: only when one is set: a contact without them keeps its 17-item record)
    customer: str | None = None
    case_id: str | None = None

    def to_wire(self) -> list[Any]:
        """The fields in declaration order (``W_*`` are their positions, derived below): an open
        contact is kept in memory in this form, and a 17-item list is a quarter of a 17-key dict.
        New fields go last, with a default: a record of an older worker has 14 items (no agent,
        nothing decided) and reads as a segment nobody's view follows, 15 (nothing decided: no
        replay of it is skipped by the contact's offset, only by the partition's), or 16 (no
        response yet: ``responded`` did not exist).

        Equal times are one float object: a waiting contact's offered, last and seen are one
        event's time, and its unset times are 0.0. The interpreter keeps the objects it was given,
        so they are shared already; mypyc keeps float fields unboxed and would box each one afresh
        here, 24 B apiece: six floats per open contact instead of one. (Sharing by ``==`` keeps
        every value: event times are never -0.0, see events.parse_ts, nor NaN.)"""
        seen_t, last_t = self.seen, self.last
        seen: object = seen_t
        last: object = seen if last_t == seen_t else last_t
        wire: list[Any] = [
            self.partition,
            self.channel,
            self.queue,
            self.phase,
            last if self.offered == last_t else self.offered,
            last,
            seen,
            _ZERO if self.answered == 0.0 else last if self.answered == last_t else self.answered,
            self.hold_start,
            _ZERO if self.hold_total == 0.0 else self.hold_total,
            _ZERO if self.ended == 0.0 else last if self.ended == last_t else self.ended,
            self.surveyed,
            self.ids,
            self.ended_offset,
            self.agent,
            self.decided,
            self.responded,
        ]
        if self.customer is not None or self.case_id is not None:
            wire += [self.customer, self.case_id]
        return wire

    @classmethod
    def from_wire(cls, d: list[Any]) -> ContactState:
        return cls(*d)


#: the wire layout of a contact record is ContactState's fields in order; the intake reads a few
#: of them in place, at these positions
CONTACT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ContactState))
W_PARTITION, W_PHASE, W_SEEN, W_ENDED, W_IDS, W_ENDED_OFFSET, W_DECIDED = (
    CONTACT_FIELDS.index(name)
    for name in ("partition", "phase", "seen", "ended", "ids", "ended_offset", "decided")
)


@dataclass(slots=True)
class AgentState:
    partition: int
    state: str
    queues: list[str]
    ts: float
    ids: list[str] = field(default_factory=list)
    name: str | None = None  #: display name, from the latest event that carried one
    reason: str | None = None  #: why the agent is in this state (e.g. ``lunch``), from the latest event

    def to_wire(self) -> dict[str, Any]:
        """Name and reason only when present: most agent records carry neither."""
        wire = {"p": self.partition, "s": self.state, "q": self.queues, "t": self.ts, "i": self.ids}
        if self.name is not None:
            wire["n"] = self.name
        if self.reason is not None:
            wire["r"] = self.reason
        return wire

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> AgentState:
        return cls(d["p"], d["s"], d["q"], d["t"], d["i"], d.get("n"), d.get("r"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event did: ``duplicate`` (nothing), or accepted with its facts and the new state."""

    state: ContactState | AgentState | None
    facts: list[Fact]
    duplicate: bool = False
    late: bool = False


def _reject(detail: str) -> Rejection:
    return Rejection(Reason.LIFECYCLE, detail)


def complete_by_timeout(state: ContactState, cid: str) -> list[Fact]:
    """No wrap-up in time: handled with ACW = 0, counted at ``ended`` (for the queue, and for the
    agent who handled it)."""
    state.phase = DONE
    handle = state.ended - state.answered
    facts = [Fact(Kind.HANDLED, state.queue, state.channel, state.ended, "", handle)]
    if state.agent is not None:
        facts.append(_agent_done(state, state.ended, handle, False, cid))
    return facts


def _agent_done(state: ContactState, ts: float, handle: float, late: bool, cid: str) -> Fact:
    """The answering agent completed this segment: counted for them, and out of their hands."""
    return Fact(Kind.AG_DONE, state.queue, state.channel, ts, state.agent or "", handle, late, (cid,))


def _agent_phase(state: ContactState, ts: float, phase: str, late: bool, cid: str) -> list[Fact]:
    if state.agent is None:
        return []
    return [Fact(Kind.AG_CONTACT, state.queue, state.channel, ts, state.agent, late=late, extra=(cid, phase))]


def apply_contact(
    state: ContactState | None,
    ev: ContactEvent,
    *,
    partition: int,
    offset: int,
    channel: str,
    watermark: float,
    lateness_s: float,
    acw_timeout_s: float,
) -> Outcome | Rejection:
    """Apply one validated contact event. ``watermark`` is the partition's newest event time
    before this event. The state passed in is mutated only when the event is accepted.
    Wrap-ups whose deadline (ended + timeout) the watermark has passed are completed by the
    caller first, whatever the event (streams.core.intake fires them in deadline order).
    ``offset`` is the event's source offset, kept for ``ended`` to identify a later timeout."""
    if state is not None and ev.event_id in state.ids:
        return Outcome(state, [], duplicate=True)
    late = ev.ts < watermark - lateness_s
    cid = ev.contact_id
    if state is None:
        if ev.type != "offered":
            return _reject(f"{ev.type} for unknown contact {cid[:64]!r} (no offered, or expired)")
        assert ev.queue is not None
        state = ContactState(
            partition, channel, ev.queue, WAITING, ev.ts, ev.ts, ev.ts, ids=[ev.event_id], decided=offset
        )
        return Outcome(state, [Fact(Kind.OFFERED, ev.queue, channel, ev.ts, cid, late=late)], late=late)

    facts: list[Fact] = []
    etype, ts, phase = ev.type, ev.ts, state.phase
    if etype == "survey":
        if phase not in (ENDED, DONE):
            return _reject(f"survey before the contact ended (contact is {_PHASE_NAMES[phase]})")
        if ts < state.ended:
            return _reject("survey time is before the contact's ended time")
        if state.surveyed:
            return _reject("contact already has a survey")
        state.surveyed = True
        facts.append(
            Fact(
                Kind.SURVEY,
                state.queue,
                state.channel,
                ts,
                cid,
                late=late,
                extra=(ev.csat, ev.nps, ev.resolved, ev.ces),
            )
        )
    elif etype == "resolved":
        pass  # any phase, any time: resolution time is counted elsewhere (docs/kpis.md)
    elif etype == "responded" and (state.responded or phase in (ENDED, DONE)):
        pass  # not the segment's first response: accepted, changes nothing, in any order
    else:
        if ts < state.last:
            return _reject(f"{etype} time is {state.last - ts:.3f} s before the contact's previous event")
        q, ch = state.queue, state.channel
        if etype == "offered":
            return _reject("offered for a contact that was already offered")
        elif etype in ("answered", "abandoned", "dequeued", "missed"):
            if phase != WAITING:
                return _reject(f"{etype} for a contact that is not waiting (it is {_PHASE_NAMES[phase]})")
            wait = ts - state.offered
            if etype == "answered":
                state.phase, state.answered, state.agent = HANDLING, ts, ev.agent_id
                state.hold_start, state.hold_total = None, 0.0
                facts.append(Fact(Kind.ANSWERED, q, ch, ts, cid, wait, late))
                facts += _agent_phase(state, ts, TALKING, late, cid)
            elif etype == "abandoned":
                state.phase = ABANDONED
                facts.append(Fact(Kind.ABANDONED, q, ch, ts, cid, wait, late))
            elif etype == "dequeued":
                state.phase = DEQUEUED
                facts.append(Fact(Kind.DEQUEUED, q, ch, ts, cid, wait, late, (ev.reason or "other",)))
            else:  # missed: the contact keeps waiting; the agent who missed it travels with the fact
                facts.append(Fact(Kind.MISSED, q, ch, ts, cid, late=late, extra=(ev.agent_id,)))
                facts.append(Fact(Kind.AG_MISSED, q, ch, ts, ev.agent_id or "", late=late, extra=(cid,)))
        elif etype == "responded":
            if phase not in (WAITING, HANDLING):
                return _reject(f"responded for a contact that is {_PHASE_NAMES[phase]}")
            state.responded = True
            facts.append(Fact(Kind.RESPONDED, q, ch, ts, cid, ts - state.offered, late))
        elif etype == "hold":
            if phase != HANDLING or state.hold_start is not None:
                return _reject("hold for a contact that is not being handled or is already on hold")
            state.hold_start = ts
            facts += _agent_phase(state, ts, ON_HOLD, late, cid)
        elif etype == "resume":
            if phase != HANDLING or state.hold_start is None:
                return _reject("resume for a contact that is not on hold")
            state.hold_total += ts - state.hold_start
            state.hold_start = None
            facts += _agent_phase(state, ts, TALKING, late, cid)
        elif etype == "transferred":
            if phase == WAITING:
                facts.append(Fact(Kind.TRANSFERRED, q, ch, ts, cid, late=late))
            elif phase == HANDLING:
                facts.append(Fact(Kind.TRANSFERRED, q, ch, ts, cid, late=late))
                facts.append(Fact(Kind.HANDLED, q, ch, ts, cid, ts - state.answered, late))
                if state.agent is not None:
                    facts.append(_agent_done(state, ts, ts - state.answered, late, cid))
            else:
                return _reject(f"transferred for a contact that is {_PHASE_NAMES[phase]}")
            assert ev.queue is not None
            state.queue, state.phase, state.offered, state.agent = ev.queue, WAITING, ts, None
            state.hold_start, state.hold_total, state.responded = None, 0.0, False
            facts.append(Fact(Kind.OFFERED, ev.queue, ch, ts, cid, late=late))
        elif etype == "ended":
            if phase != HANDLING:
                return _reject(f"ended for a contact that is not being handled (it is {_PHASE_NAMES[phase]})")
            if state.hold_start is not None:  # a hold still open at ended closes at ended
                state.hold_total += ts - state.hold_start
                state.hold_start = None
            state.phase, state.ended, state.ended_offset = ENDED, ts, offset
            facts += _agent_phase(state, ts, IN_ACW, late, cid)
        elif etype == "wrapup_ended":
            if phase == ENDED:
                if ts - state.ended > acw_timeout_s:
                    facts += complete_by_timeout(state, cid)
                else:
                    state.phase = DONE
                    facts.append(Fact(Kind.HANDLED, q, ch, ts, cid, ts - state.answered, late))
                    if state.agent is not None:
                        facts.append(_agent_done(state, ts, ts - state.answered, late, cid))
            elif phase != DONE:  # after a timeout completion it is accepted and changes nothing
                return _reject(f"wrapup_ended for a contact that has not ended (it is {_PHASE_NAMES[phase]})")
        state.last = ts
    state.seen = max(state.seen, ts)
    state.ids.append(ev.event_id)
    state.decided = offset
    return Outcome(state, facts, late=late)


_PHASE_NAMES = {
    WAITING: "waiting",
    HANDLING: "being handled",
    ENDED: "ended",
    DONE: "completed",
    ABANDONED: "abandoned",
    DEQUEUED: "dequeued",
}


def apply_agent(
    state: AgentState | None, ev: AgentEvent, *, partition: int, watermark: float, lateness_s: float
) -> Outcome:
    """The latest event of an agent wins: facts say which queues see which state now."""
    late = ev.ts < watermark - lateness_s
    if state is not None and ev.event_id in state.ids:
        return Outcome(state, [], duplicate=True)
    if state is not None and ev.ts < state.ts:
        state.ids = (state.ids + [ev.event_id])[-AGENT_EVENT_IDS:]
        return Outcome(state, [], late=late)
    old = state.queues if state is not None else []
    facts = [Fact(Kind.AGENT, q, "", ev.ts, ev.agent_id, extra=(None,)) for q in old if q not in ev.queues]
    facts += [Fact(Kind.AGENT, q, "", ev.ts, ev.agent_id, extra=(ev.state,)) for q in ev.queues]
    ids = ([] if state is None else state.ids) + [ev.event_id]
    name = ev.name if ev.name is not None else state.name if state is not None else None
    facts.append(
        Fact(
            Kind.AG_STATE,
            "",
            "",
            ev.ts,
            ev.agent_id,
            late=late,
            extra=(ev.state, ev.reason, name, list(ev.queues)),
        )
    )
    new = AgentState(partition, ev.state, list(ev.queues), ev.ts, ids[-AGENT_EVENT_IDS:], name, ev.reason)
    return Outcome(new, facts, late=late)
