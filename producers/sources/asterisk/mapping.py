"""queue_log lines -> ccmon events (SPEC §1). Pure and deterministic: no I/O, no clock.

The decisions, verb by verb and why, are in docs/sources/asterisk.md; in short:
- a contact segment is keyed by (callid, queue); its ``contact_id`` is ``callid@queue`` (``#n`` when
  the same call enters the same queue again); a transfer keeps the contact_id into the next queue;
- every event's id is the id of the line that caused it plus a fixed suffix, so re-reading a
  line gives the same ids whatever came before it in this run;
- things that happen later than a line (the end of a configured wrap-up, the end of a transfer
  whose target never entered a queue, a call with no line for hours) are kept as pending items
  with their due time and released when event time passes it: on a later line, or when the
  caller says the wall clock has (``release``); either way the event is the same.

The whole state (open segments, agents, pending items) is plain JSON (``to_state``), saved with the
read position, so a restarted ingester continues exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from producers.sources import events
from producers.sources.asterisk.queue_log import NONE, Line, line_id
from producers.sources.events import SourceEvent
from streams.core.events import AgentStateName, ContactType

WAITING, ANSWERED, TRANSFER, MOVED, CLOSED = "waiting", "answered", "transfer", "moved", "closed"
OPEN = (WAITING, ANSWERED, TRANSFER)

#: Interface prefixes (PJSIP/, SIP/, IAX2/, Local/, Agent/...) and the Local channel's @context/n
#: are not part of the agent: ``PJSIP/400`` -> ``400``, ``Local/2001@from-internal/n`` -> ``2001``.
DEFAULT_AGENT_PATTERN = r"^(?:[A-Za-z][A-Za-z0-9_]*/)?(?P<id>[^@/]+)"
DEQUEUE_REASONS = {
    "EXITWITHTIMEOUT": "timeout",
    "EXITEMPTY": "empty",
    "LEAVEEMPTY": "empty",
    "EXITWITHKEY": "key",
    "WITHDRAW": "withdraw",
}
#: callers Wazo turns away before they wait: the queue is full (they overflow elsewhere) or has no agents
TURNED_AWAY = {"FULL": "overflow", "JOINEMPTY": "empty"}
TRANSFERS = ("BLINDTRANSFER", "ATTENDEDTRANSFER", "TRANSFER")
#: verbs that carry no ccmon event by decision (docs/sources/asterisk.md says why for each)
INFORMATIONAL = ("RINGCANCELED", "CONFIGRELOAD", "DID", "INFO", "CLOSED", "WRAPUPSTART")
#: how often (event time) open calls are checked for staleness and finished ones forgotten: both
#: are hours-scale rules, and each check walks every remembered segment
SWEEP_EVERY_S = 3600.0
_RANK = {"transfer": 0, "wrapup": 1, "agent": 2}  #: at one due time: contacts before agents
AGENT_REASON = re.compile(r"[^A-Za-z0-9_. -]")
QUEUE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def queue_label(name: str) -> str:
    """The queue as ccmon names it (SPEC: ``[A-Za-z0-9_.-]{1,64}``): other characters become ``_``,
    so a ``queues.conf`` section such as ``[Sales Team]`` is still monitored, as ``Sales_Team``."""
    return QUEUE_CHARS.sub("_", name.strip())[:64]


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "asterisk"  #: names the Asterisk server in every id: two servers never collide
    wrapup_s: float = 0.0  #: ACW after COMPLETE* for queues not in ``wrapup_by_queue`` (0: none)
    wrapup_by_queue: tuple[tuple[str, float], ...] = ()
    agent_pattern: str = DEFAULT_AGENT_PATTERN
    transfer_wait_s: float = 10.0  #: how long a transferred call may take to enter its next queue
    stale_after_s: float = 4 * 3600.0  #: an open call with no line for this long is closed
    #: how long a finished segment is remembered (for ``#n``): longer than the worker keeps a contact
    #: (CCMON_RETENTION_S, 24 h), so no contact id is reused while the worker knows it
    retention_s: float = 48 * 3600.0

    def wrapup(self, queue: str) -> float:
        """The queue's wrap-up, named as in queues.conf or as ccmon labels it."""
        per_queue = dict(self.wrapup_by_queue)
        return per_queue.get(queue, per_queue.get(queue_label(queue), self.wrapup_s))


#: one event for the input topics (``stream`` is ``calls`` or ``agents``): the shared type every
#: source builds with ``producers.sources.events``
Out = SourceEvent
#: caller ids that name nobody: an offered call from one of them carries no ``customer``
NO_CALLER = frozenset(
    {"", "anonymous", "unknown", "withheld", "private", "restricted", "unavailable", "none"}
)


def caller(callerid: str) -> str | None:
    """The customer of a call from ENTERQUEUE's caller id (data2): the number as Asterisk gives it,
    none when the caller withheld it or the network gave none."""
    text = callerid.strip()
    return None if text.lower() in NO_CALLER or len(text) > 128 else text


@dataclass(slots=True)
class Segment:
    contact: str
    queue: str
    phase: str
    ts: float  #: time of its latest line: where a forced close puts the end
    agent: str = ""
    hold: bool = False
    transfer_ts: float = 0.0
    transfer_id: str = ""
    uses: int = 1  #: how many segments this (callid, queue) has had: the ``#n`` of the next


@dataclass(slots=True)
class Agent:
    state: str = ""  #: the latest state sent ("" before the first)
    queues: list[str] = field(default_factory=list)
    sent_queues: list[str] = field(default_factory=list)
    paused: bool = False
    reason: str = ""
    sent_reason: str = ""
    token: str = ""  #: id of the latest state event: a wrap-up end applies only if still current


def _short(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


class Mapper:
    """The mapping's state machine: open segments by callid and queue, agents, pending items.
    ``feed`` one parsed line at a time, in file order; ``release`` when time passes without lines."""

    def __init__(self, config: Config, state: dict[str, Any] | None = None) -> None:
        self.config = config
        self._agent_re = re.compile(config.agent_pattern)
        self.calls: dict[str, dict[str, Segment]] = {}
        self.agents: dict[str, Agent] = {}
        self.pending: list[dict[str, Any]] = []
        self.last_ts = 0.0
        self.next_sweep = 0.0
        self.closed: Counter[str] = Counter()  #: open calls closed by force, by cause (this run)
        if state:
            self.calls = {c: {q: Segment(**s) for q, s in qs.items()} for c, qs in state["calls"].items()}
            self.agents = {a: Agent(**d) for a, d in state["agents"].items()}
            self.pending = list(state["pending"])
            self.last_ts, self.next_sweep = float(state["last_ts"]), float(state["next_sweep"])

    def to_state(self) -> dict[str, Any]:
        return {
            "calls": {c: {q: asdict(s) for q, s in qs.items()} for c, qs in self.calls.items()},
            "agents": {a: asdict(d) for a, d in self.agents.items()},
            "pending": list(self.pending),
            "last_ts": self.last_ts,
            "next_sweep": self.next_sweep,
        }

    # ---- entry points ------------------------------------------------------------------------
    def feed(self, line: Line, lid: str) -> tuple[list[Out], str | None]:
        """The events for one line (after those that fell due before it) and, when the line (or
        part of it) gives no event, why: the summary counts these reasons."""
        out = self.release(line.ts)
        handler = _HANDLERS.get(line.verb)
        if line.verb in INFORMATIONAL:
            skipped: str | None = f"{line.verb}: no event by design"
        elif handler is None:
            skipped = "unknown verb"
        else:
            skipped = handler(self, line, lid, out)
        self.last_ts = max(self.last_ts, line.ts)
        return out, skipped

    def release(self, now: float) -> list[Out]:
        """Events whose time has come by ``now`` (event time, or the wall clock of a quiet file)."""
        out: list[Out] = []
        due = sorted(
            (p for p in self.pending if p["due"] <= now), key=lambda p: (p["due"], _RANK[p["kind"]], p["id"])
        )
        if due:
            self.pending = [p for p in self.pending if p["due"] > now]
        for p in due:
            if p["kind"] == "wrapup":
                out.append(self._contact("wrapup_ended", p["contact"], p["due"], p["id"]))
            elif p["kind"] == "agent":
                a = self.agents.get(p["agent"])
                if a is not None and a.token == p["token"]:
                    self._set_agent(p["agent"], "away" if a.paused else "available", p["due"], p["id"], out)
            else:  # a transfer whose call entered no other queue: it ended there, as handled
                seg = self.calls.get(p["callid"], {}).get(p["queue"])
                if seg is not None and seg.phase == TRANSFER:
                    self._end(seg, seg.transfer_ts, seg.transfer_id, out, acw=False)
        if now >= self.next_sweep:
            self._sweep(now, out)
        return out

    # ---- helpers -----------------------------------------------------------------------------
    def agent_id(self, member: str) -> str:
        m = self._agent_re.search(member)
        if not m:
            return member
        found = m.groupdict().get("id") if m.groupdict() else (m.group(1) if m.re.groups else m.group(0))
        return (found or member).strip() or member

    def _contact(self, etype: ContactType, contact: str, ts: float, eid: str, **fields: Any) -> Out:
        return events.contact(etype, contact, ts, eid, channel="voice", **fields)

    def _agent(self, member: str, queue: str = NONE) -> tuple[str, Agent]:
        aid = self.agent_id(member)
        a = self.agents.setdefault(aid, Agent())
        label = queue_label(queue)
        if queue != NONE and label and label not in a.queues:
            a.queues = sorted([*a.queues, label])
        return aid, a

    def _set_agent(self, aid: str, state: str, ts: float, eid: str, out: list[Out]) -> None:
        a = self.agents[aid]
        reason = a.reason if state == "away" else ""
        if (state, a.queues, reason) == (a.state, a.sent_queues, a.sent_reason):
            return
        out.append(
            events.agent_state(aid, cast(AgentStateName, state), a.queues, ts, eid, reason=reason or None)
        )
        a.state, a.sent_queues, a.sent_reason, a.token = state, list(a.queues), reason, eid

    def _free(self, aid: str, a: Agent, ts: float, queue: str, lid: str, out: list[Out]) -> None:
        """The agent's call is over: ACW for the queue's wrap-up time, then available (or away when
        they paused during the call)."""
        wrap = self.config.wrapup(queue)
        if wrap > 0:
            self._set_agent(aid, "acw", ts, f"{lid}-acw", out)
            self.pending.append(
                {"kind": "agent", "due": ts + wrap, "agent": aid, "token": a.token, "id": f"{lid}-ready"}
            )
        else:
            self._set_agent(aid, "away" if a.paused else "available", ts, f"{lid}-ready", out)

    def _end(self, seg: Segment, ts: float, lid: str, out: list[Out], acw: bool, **fields: Any) -> None:
        """``ended`` (closing an open hold, as SPEC says) and the wrap-up per the rule."""
        out.append(self._contact("ended", seg.contact, ts, f"{lid}-ended", **fields))
        wrap = self.config.wrapup(seg.queue) if acw else 0.0
        if wrap > 0:
            self.pending.append(
                {"kind": "wrapup", "due": ts + wrap, "contact": seg.contact, "id": f"{lid}-wrapup"}
            )
        else:
            out.append(self._contact("wrapup_ended", seg.contact, ts, f"{lid}-wrapup"))
        seg.phase, seg.hold, seg.ts = CLOSED, False, ts

    def _leave(
        self, seg: Segment, line: Line, lid: str, out: list[Out], etype: ContactType, **fields: Any
    ) -> None:
        """The call left the queue without an agent (abandoned, dequeued)."""
        out.append(self._contact(etype, seg.contact, line.ts, f"{lid}-{etype}", **fields))
        seg.phase, seg.ts = CLOSED, line.ts

    def _close(self, seg: Segment, ts: float, eid: str, reason: str, out: list[Out]) -> None:
        """Close an open segment by force (restart, a call with no line for hours): a waiting call
        is dequeued with ``reason``, a call with an agent ended at ``ts`` with no wrap-up."""
        ts = max(ts, seg.ts)
        if seg.phase == WAITING:
            out.append(self._contact("dequeued", seg.contact, ts, f"{eid}-dequeued", reason=reason))
            seg.phase, seg.ts = CLOSED, ts
        elif seg.phase == TRANSFER:
            self._end(seg, seg.transfer_ts, seg.transfer_id, out, acw=False)
        else:
            self._end(seg, ts, eid, out, acw=False)
        self.closed[reason] += 1

    def _sweep(self, now: float, out: list[Out]) -> None:
        """Every ``SWEEP_EVERY_S`` of event time: close calls silent for ``stale_after_s`` (a lost COMPLETE)
        and forget finished segments after ``retention_s``."""
        self.next_sweep = now + SWEEP_EVERY_S
        for callid in list(self.calls):
            segs = self.calls[callid]
            for queue, seg in list(segs.items()):
                if seg.phase in OPEN and seg.ts + self.config.stale_after_s <= now:
                    self._close(
                        seg, seg.ts, line_id(self.config.source, f"stale:{seg.contact}:{seg.ts}"), "lost", out
                    )
                elif seg.phase in (CLOSED, MOVED) and seg.ts + self.config.retention_s <= now:
                    del segs[queue]
            if not segs:
                del self.calls[callid]

    def _segment(self, line: Line, *phases: str) -> Segment | None:
        seg = self.calls.get(line.callid, {}).get(line.queue)
        return seg if seg is not None and seg.phase in phases else None


# ---- verbs: each handler appends the line's events to ``out`` and returns why it gave none ------
Handler = Callable[[Mapper, Line, str, list[Out]], "str | None"]


def _enter(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    label = queue_label(line.queue)
    if line.callid == NONE or line.queue == NONE or not label:
        return "no callid or no queue"
    segs = m.calls.setdefault(line.callid, {})
    old = segs.get(line.queue)
    if old is not None and old.phase == TRANSFER:  # transferred back into the same queue
        source: Segment | None = old
    else:
        source = next(
            (s for q, s in segs.items() if q != line.queue and s.phase in (TRANSFER, ANSWERED)), None
        )
        if old is not None and old.phase in OPEN:  # entered again without leaving: a line was lost
            m._close(old, line.ts, f"{lid}-lost", "lost", out)
    uses = old.uses + 1 if old is not None else 1
    if source is not None:  # the transfer shows here: same contact, moved to this queue
        at, eid = (source.transfer_ts, source.transfer_id) if source.phase == TRANSFER else (line.ts, lid)
        if source.phase == ANSWERED:  # ENTERQUEUE written before the transfer line: the agent is free
            aid, a = m._agent(source.agent)
            m._free(aid, a, line.ts, source.queue, lid, out)
        out.append(m._contact("transferred", source.contact, at, f"{eid}-transferred", queue=label))
        source.phase, source.ts = MOVED, at
        segs[line.queue] = Segment(source.contact, line.queue, WAITING, line.ts, uses=uses)
    else:
        contact = f"{line.callid}@{label}" + (f"#{uses}" if uses > 1 else "")
        out.append(
            m._contact(
                "offered", contact, line.ts, f"{lid}-offered", queue=label, customer=caller(line.field(2))
            )
        )
        segs[line.queue] = Segment(contact, line.queue, WAITING, line.ts, uses=uses)
    if line.verb in TURNED_AWAY:
        m._leave(segs[line.queue], line, lid, out, "dequeued", reason=TURNED_AWAY[line.verb])
    return None


def _connect(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    if line.agent == NONE:
        return "CONNECT without an agent"
    aid, a = m._agent(line.agent, line.queue)
    seg = m._segment(line, WAITING)
    skipped = None
    if seg is None:
        skipped = "no waiting call for this line (ENTERQUEUE not read)"
    else:
        out.append(m._contact("answered", seg.contact, line.ts, f"{lid}-answered", agent_id=aid))
        seg.phase, seg.agent, seg.ts = ANSWERED, line.agent, line.ts
    m._set_agent(aid, "busy", line.ts, f"{lid}-busy", out)
    return skipped


def _complete(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    seg = m._segment(line, ANSWERED)
    member = seg.agent if seg is not None else line.agent
    skipped = None
    if seg is None:
        skipped = "no answered call for this line"
    else:
        m._end(
            seg, line.ts, lid, out, acw=True, hangup="caller" if line.verb == "COMPLETECALLER" else "agent"
        )
    if member != NONE:
        aid, a = m._agent(member, line.queue)
        m._free(aid, a, line.ts, line.queue, lid, out)
    return skipped


def _transfer(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    if m._segment(line, MOVED) is not None:
        return None  # the call already entered its next queue: the transfer was shown there
    seg = m._segment(line, ANSWERED)
    if seg is None:
        return "no answered call for this line"
    seg.phase, seg.transfer_ts, seg.transfer_id, seg.ts = TRANSFER, line.ts, lid, line.ts
    m.pending.append(
        {
            "kind": "transfer",
            "due": line.ts + m.config.transfer_wait_s,
            "callid": line.callid,
            "queue": line.queue,
            "id": lid,
        }
    )
    aid, a = m._agent(seg.agent if seg.agent else line.agent, line.queue)
    m._free(aid, a, line.ts, line.queue, lid, out)
    return None


def _left(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    seg = m._segment(line, WAITING)
    if seg is None:
        return "no waiting call for this line"
    if line.verb == "ABANDON":
        m._leave(seg, line, lid, out, "abandoned")
    else:
        extra = {"key": line.field(1)} if line.verb == "EXITWITHKEY" and line.field(1) else {}
        m._leave(seg, line, lid, out, "dequeued", reason=DEQUEUE_REASONS[line.verb], **extra)
    return None


def _ring_no_answer(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    seg = m._segment(line, WAITING)
    if seg is None or line.agent == NONE:
        return "no waiting call for this line"
    aid, _ = m._agent(line.agent, line.queue)
    ring = line.field(1).strip()
    extra = {"ring_ms": int(ring)} if ring.isdigit() else {}
    out.append(m._contact("missed", seg.contact, line.ts, f"{lid}-missed", agent_id=aid, **extra))
    seg.ts = line.ts  # a forced close must not go back before it
    return None


def _hold(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    seg = m._segment(line, ANSWERED)
    on = line.verb == "CALLERONHOLD"
    if seg is None or seg.hold == on:
        return "no answered call in that hold state"
    out.append(
        m._contact("hold" if on else "resume", seg.contact, line.ts, f"{lid}-{'hold' if on else 'resume'}")
    )
    seg.hold, seg.ts = on, line.ts
    return None


def _member(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    if line.agent == NONE:
        return "no agent on the line"
    verb = line.verb
    aid, a = m._agent(line.agent, line.queue if verb in ("ADDMEMBER", "PAUSE", "UNPAUSE") else NONE)
    eid = f"{lid}-state"
    if verb == "REMOVEMEMBER":
        a.queues = [q for q in a.queues if q != queue_label(line.queue)]
        m._set_agent(aid, a.state if a.queues and a.state else "offline", line.ts, eid, out)
    elif verb == "AGENTLOGOFF":
        m._set_agent(aid, "offline", line.ts, eid, out)
    elif verb in ("ADDMEMBER", "AGENTLOGIN"):
        if verb == "ADDMEMBER" and line.field(1).strip().upper() == "PAUSED":
            a.paused = True
        if a.state in ("", "offline"):
            m._set_agent(aid, "away" if a.paused else "available", line.ts, eid, out)
        else:
            m._set_agent(aid, a.state, line.ts, eid, out)
    elif verb in ("PAUSE", "PAUSEALL"):
        a.paused = True
        a.reason = AGENT_REASON.sub("_", line.field(1)).strip()[:64]
        if a.state not in ("busy", "acw"):  # a pause during a call starts when the call is over
            m._set_agent(aid, "away", line.ts, eid, out)
    else:  # UNPAUSE, UNPAUSEALL
        a.paused, a.reason = False, ""
        if a.state in ("away", ""):
            m._set_agent(aid, "available", line.ts, eid, out)
    return None


def _queue_start(m: Mapper, line: Line, lid: str, out: list[Out]) -> str | None:
    """Asterisk (re)started: every call it had is gone. Close each at the last time Asterisk was
    seen alive (the newest line before this one), so no wait or talk time includes the outage."""
    at = m.last_ts or line.ts
    for segs in m.calls.values():
        for seg in segs.values():
            if seg.phase in OPEN:
                m._close(seg, at, f"{lid}-{_short(seg.contact)}", "restart", out)
    m.pending = [p for p in m.pending if p["kind"] == "wrapup"]
    for aid, a in sorted(m.agents.items()):
        if a.state in ("busy", "acw"):
            m._set_agent(aid, "away" if a.paused else "available", line.ts, f"{lid}-{_short(aid)}", out)
    return None


_HANDLERS: dict[str, Handler] = {
    "ENTERQUEUE": _enter,
    "FULL": _enter,
    "JOINEMPTY": _enter,
    "CONNECT": _connect,
    "COMPLETECALLER": _complete,
    "COMPLETEAGENT": _complete,
    "ABANDON": _left,
    **{v: _left for v in DEQUEUE_REASONS},
    **{v: _transfer for v in TRANSFERS},
    "RINGNOANSWER": _ring_no_answer,
    "CALLERONHOLD": _hold,
    "CALLEROFFHOLD": _hold,
    **{
        v: _member
        for v in (
            "ADDMEMBER",
            "REMOVEMEMBER",
            "PAUSE",
            "UNPAUSE",
            "PAUSEALL",
            "UNPAUSEALL",
            "AGENTLOGIN",
            "AGENTLOGOFF",
        )
    },
    "QUEUESTART": _queue_start,
}
#: the verbs that have a handler (INFORMATIONAL ones are known too, but give no event)
HANDLED_VERBS = frozenset(_HANDLERS)
