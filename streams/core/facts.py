"""Facts: what stage 1 (contact lifecycle) tells stage 2 (queue aggregation).

A fact is one countable consequence of an event, for one queue ("contact c was answered in
queue q after 12 s"). Facts travel through the internal facts topic partitioned by queue, each
with a stable id (source topic, partition, offset, index) so that stage 2 can drop a fact it
already applied when stage 1 replays after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

__all__ = [
    "AGENT_ROUTED",
    "CUSTOMER_DERIVED",
    "CUSTOMER_ROUTED",
    "Fact",
    "HAND_PHASES",
    "HandPhase",
    "IN_ACW",
    "Kind",
    "ON_HOLD",
    "TALKING",
]


class Kind:
    OFFERED: Final = "offered"  #: entered the queue (offered or transferred in); starts waiting
    ANSWERED: Final = "answered"  #: wait ended by an answer; value = wait seconds
    ABANDONED: Final = "abandoned"  #: wait ended by hang-up; value = wait seconds
    DEQUEUED: Final = (
        "dequeued"  #: wait ended without agent or hang-up; value = wait seconds; extra = (reason,)
    )
    MISSED: Final = "missed"  #: an agent did not take the waiting contact; extra = (agent id,)
    TRANSFERRED: Final = "transferred"  #: segment left by transfer; stops waiting if it was
    HANDLED: Final = "handled"  #: handling completed; value = handle seconds
    RESPONDED: Final = "responded"  #: the segment's first response; value = seconds since its offered
    SURVEY: Final = "survey"  #: extra = (csat, nps, resolved, ces); facts before ces have three
    AGENT: Final = "agent"  #: subject = agent id; extra = (state,) or (None,) when it left the queue
    # Per-agent facts (the agent view): routed to the facts partition of the agent id (``subject``),
    # not of the queue, so that one stage-2 record per agent gathers what the agent's own events
    # (keyed by agent) and the contacts it handles (keyed by contact) say about it.
    AG_STATE: Final = "ag_state"  #: the agent's latest state; extra = (state, reason, name, queues)
    AG_CONTACT: Final = "ag_contact"  #: a contact in hand changed phase; extra = (contact id, phase)
    AG_DONE: Final = (
        "ag_done"  #: the agent completed a segment; value = handle seconds; extra = (contact id,)
    )
    AG_MISSED: Final = "ag_missed"  #: the agent did not take an offered contact; extra = (contact id,)
    # Customer facts (stage 1 → the customer stage, streams/core/customers.py): routed to the facts
    # partition of the customer's hash (``subject``), so that one record gathers every contact of
    # a customer whatever topic, partition, queue or channel it came through.
    CU_OFFERED: Final = "cu_offered"  #: a new contact (not a transfer); extra = (contact, case, clear)
    CU_ANSWERED: Final = "cu_answered"  #: extra = (contact id,)
    CU_LEFT: Final = "cu_left"  #: abandoned or dequeued; value = wait; extra = (contact id, outcome)
    CU_HANDLED: Final = "cu_handled"  #: a segment handled; extra = (contact id,)
    CU_SURVEY: Final = "cu_survey"  #: extra = (contact id, csat, nps)
    CU_RESOLVED: Final = "cu_resolved"  #: extra = (contact id, case)
    # On the wire every customer fact's extra has the release time (ms) second: (contact id,
    # release, ...the rest above); stage 1 inserts it when it sends the fact (intake._emit).
    #: the watermarks of a stage-1 batch's contact partitions, sent to every facts partition after
    #: the batch: extra = (source "topic/partition", watermark ms, source, ms, ...)
    CU_CLOCK: Final = "cu_clock"
    # What the customer stage tells the queues (routed by queue, like every queue fact)
    REPEAT: Final = "repeat"  #: subject = contact; extra = (previous outcome,)
    UNRECOVERED: Final = "unrecovered"  #: an abandon to call back; value = wait; extra = (hash, clear)
    RECOVERED: Final = "recovered"  #: subject = the abandoned contact; value = seconds to the answer
    LOST: Final = "lost"  #: subject = the abandoned contact; ts = abandon + W
    FCR: Final = "fcr"  #: operational FCR decided; extra = (resolved on first contact,)
    RESOLUTION: Final = "resolution"  #: value = seconds to resolve; extra = (contacts of the case,)
    RISK: Final = "risk"  #: subject = customer hash; value = 1 at risk for this queue, 0 no more


#: kinds routed by agent id (the fact's ``subject``) instead of by queue
AGENT_ROUTED = frozenset({Kind.AG_STATE, Kind.AG_CONTACT, Kind.AG_DONE, Kind.AG_MISSED})
#: kinds routed by customer hash (the fact's ``subject``): the customer stage's input
CUSTOMER_ROUTED = frozenset(
    {
        Kind.CU_OFFERED,
        Kind.CU_ANSWERED,
        Kind.CU_LEFT,
        Kind.CU_HANDLED,
        Kind.CU_SURVEY,
        Kind.CU_RESOLVED,
        Kind.CU_CLOCK,
    }
)
#: kinds the customer stage derives, for the queues (routed by queue)
CUSTOMER_DERIVED = frozenset(
    {Kind.REPEAT, Kind.UNRECOVERED, Kind.RECOVERED, Kind.LOST, Kind.FCR, Kind.RESOLUTION, Kind.RISK}
)
#: phases of a contact in an agent's hand
HandPhase = Literal["talking", "hold", "acw"]
HAND_PHASES: Final[tuple[HandPhase, ...]] = get_args(HandPhase)
TALKING: Final = "talking"
ON_HOLD: Final = "hold"
IN_ACW: Final = "acw"


@dataclass(slots=True)
class Fact:
    kind: str
    queue: str
    channel: str  #: "" for agent facts
    ts: float  #: the event time the fact counts at
    subject: str  #: contact id, or agent id
    value: float = 0.0
    late: bool = False  #: beyond allowed lateness: counted in totals, not in windows
    extra: tuple[Any, ...] | None = None

    def to_wire(self) -> list[Any]:
        return [self.kind, self.queue, self.channel, self.ts, self.subject, self.value, self.late, self.extra]

    @classmethod
    def from_wire(cls, row: list[Any]) -> Fact:
        kind, queue, channel, ts, subject, value, late, extra = row
        return cls(
            kind, queue, channel, ts, subject, value, late, tuple(extra) if extra is not None else None
        )
