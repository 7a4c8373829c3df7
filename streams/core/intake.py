"""Stage 1 over one batch of consumed records: validate, deduplicate, run lifecycles, emit facts.

Pure: it reads and writes a mapping of lifecycle records (the Faust table's store in production)
and returns everything to send. Records:

    c|channel|contact_id  a contact's lifecycle (:class:`ContactState`)
    g|agent_id            an agent's latest state (:class:`AgentState`)
    m|topic|partition     the partition's watermark: [newest event time, last offset decided, sweep counter]
    q|partition           queue name → the day number (UTC) an accepted event of that queue was
                          last seen on that partition (for the queue cap; forgotten a retention
                          period later, once no contact or agent of the partition holds it open)
    r|topic|partition|agent_id  an agent id seen on that partition: the day number (UTC) it was
                          last seen (for the agent cap; forgotten a retention period later)

Fact ids are (source "topic/partition", source offset, index), so a replay regenerates the same
ids and stage 2 drops what it already applied. ACW timeouts are not caused by one event: they
fire in deadline order from a per-partition heap, under the source "topic/partition/acw" with the
id (deadline in ms, offset of ``ended``), which is increasing and the same on every replay.
"""

from __future__ import annotations

import base64
import heapq
import time
from collections import Counter
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from streams.config import KpiSettings
from streams.core.customers import customer_hash
from streams.core.events import Reason, Rejection, parse_agent, parse_contact
from streams.core.facts import AGENT_ROUTED, CUSTOMER_ROUTED, Fact, Kind
from streams.core.layout import (
    AGENT,
    CONTACT,
    M_DECIDED,
    M_TIME,
    REGISTRY,
    SEEN_AGENT,
    WATERMARK,
    agent_key,
    contact_key,
    contact_key_parts,
    new_watermark,
    partition_for_queue,
    registry_key,
    seen_agent_key,
    seen_agent_key_parts,
    watermark_key,
)
from streams.core.lifecycle import (
    CONTACT_FIELDS,
    ENDED,
    HANDLING,
    W_DECIDED,
    W_ENDED,
    W_ENDED_OFFSET,
    W_IDS,
    W_PARTITION,
    W_PHASE,
    W_SEEN,
    WAITING,
    AgentState,
    ContactState,
    Outcome,
    apply_agent,
    apply_contact,
    complete_by_timeout,
)

__all__ = [
    "ACCEPTED",
    "apply_error",
    "BatchOutput",
    "DeadLetter",
    "DUPLICATE",
    "Intake",
    "LATE",
    "REJECTED",
    "Record",
    "partition_for_queue",
    "record_partition",
]

ACCEPTED, DUPLICATE, LATE, REJECTED = "accepted", "duplicate", "late", "rejected"
#: phases of a contact that hold its queue open (waiting, handled, in wrap-up)
OPEN_PHASES = frozenset({WAITING, HANDLING, ENDED})
W_QUEUE = CONTACT_FIELDS.index("queue")
#: bytes of a rejected input copied into its dead letter (Kafka's default message limit is 1 MiB)
MAX_DEAD_VALUE = 256 * 1024


def apply_error(exc: BaseException) -> Rejection:
    """The dead letter's reason for an input (or a fact) that passed validation and still raised
    when applied: the error's type and message, one line."""
    return Rejection(Reason.APPLY_ERROR, f"{type(exc).__name__}: {str(exc)[:300]}".replace("\n", " "))


def record_partition(key: str, value: Any) -> int:
    """The input partition (and changelog partition) a lifecycle record belongs to."""
    kind = key[0]
    if kind == CONTACT:
        return int(value[W_PARTITION])
    if kind == AGENT:
        return AgentState.from_wire(value).partition
    if kind == SEEN_AGENT:
        return seen_agent_key_parts(key)[1]
    return int(key.rsplit("|", 1)[1])  # m|topic|partition, q|partition


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as the processor needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: Record
    reason: str
    detail: str

    def to_json(self) -> bytes:
        """The dead letter. An original larger than ``MAX_DEAD_VALUE`` is cut there (``value_size``
        says how large it was, and it stays at topic/partition/offset): base64 makes bytes 4/3 as
        large, and a near-limit input would otherwise make a dead letter the broker refuses."""
        src = self.source
        value = src.value
        size = len(value) if value is not None else None
        if value is not None and len(value) > MAX_DEAD_VALUE:
            value = value[:MAX_DEAD_VALUE]
        return orjson.dumps(
            {
                "reason": self.reason,
                "detail": self.detail,
                "topic": src.topic,
                "partition": src.partition,
                "offset": src.offset,
                "key_b64": base64.b64encode(src.key[:MAX_DEAD_VALUE]).decode()
                if src.key is not None
                else None,
                "value_b64": base64.b64encode(value).decode() if value is not None else None,
                "value_size": size,
                "value_truncated": size is not None and size > MAX_DEAD_VALUE,
                "rejected_at": time.time(),
            }
        )


@dataclass(slots=True)
class BatchOutput:
    facts: dict[int, list[list[Any]]] = field(default_factory=dict)  #: facts partition → rows
    dead: list[DeadLetter] = field(default_factory=list)
    writes: dict[str, tuple[int, Any]] = field(default_factory=dict)  #: key → (partition, value|None)
    results: Counter[tuple[str, str]] = field(default_factory=Counter)  #: (topic, result) → n
    lags: list[tuple[str, float]] = field(default_factory=list)  #: (topic, seconds)


def _for_customer(
    state: ContactState, cid: str, facts: list[Fact], etype: str, ts: float, clear: str | None
) -> list[Fact]:
    """The facts of one event, and for a contact whose customer is known, what the customer
    stage needs of them (streams/core/customers.py): routed by the customer's hash."""
    who = state.customer
    if who is None:
        return facts
    out = list(facts)
    for f in facts:
        kind = f.kind
        if kind == Kind.OFFERED and etype == "offered":  # a transfer is the same contact
            out.append(
                Fact(Kind.CU_OFFERED, f.queue, f.channel, f.ts, who, 0.0, f.late, (cid, state.case_id, clear))
            )
        elif kind == Kind.ANSWERED:
            out.append(Fact(Kind.CU_ANSWERED, f.queue, f.channel, f.ts, who, 0.0, f.late, (cid,)))
        elif kind == Kind.ABANDONED or kind == Kind.DEQUEUED:
            out.append(Fact(Kind.CU_LEFT, f.queue, f.channel, f.ts, who, f.value, f.late, (cid, kind)))
        elif kind == Kind.HANDLED:
            out.append(Fact(Kind.CU_HANDLED, f.queue, f.channel, f.ts, who, 0.0, f.late, (cid,)))
        elif kind == Kind.SURVEY:
            x = f.extra or ()
            csat = x[0] if x else None
            nps = x[1] if len(x) > 1 else None
            out.append(Fact(Kind.CU_SURVEY, f.queue, f.channel, f.ts, who, 0.0, f.late, (cid, csat, nps)))
    if etype == "resolved":
        out.append(
            Fact(Kind.CU_RESOLVED, state.queue, state.channel, ts, who, 0.0, False, (cid, state.case_id))
        )
    return out


class Intake:
    def __init__(self, data: MutableMapping[str, Any], settings: KpiSettings) -> None:
        self.data = data
        self.s = settings
        self.channels = settings.contact_topics
        self.topic_of_channel = {ch: t for t, ch in self.channels.items()}
        #: queue name → number of q| records naming it (one per input partition it was seen on)
        self.known_queues: Counter[str] = Counter()
        #: agent id → number of r| records naming it (one per input partition it was seen on)
        self.known_agents: Counter[str] = Counter()
        #: (topic, partition) → heap of (ACW deadline, offset of ended, contact key)
        self.deadlines: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
        #: (topic, partition) → the watermark last announced to the customer clocks (in memory: a
        #: restarted worker announces again, which changes nothing)
        self._announced: dict[tuple[str, int], float] = {}
        #: (topic, partition) → its watermark before the event being processed (release times)
        self._before: dict[tuple[str, int], float] = {}
        #: contact partitions declared empty to the customer clocks (in memory, as ``_announced``)
        self._declared: set[tuple[str, int]] = set()
        self.reindex()

    def reindex(self) -> None:
        """Rebuild derived in-memory state (queue registry, ACW deadlines) after recovery."""
        known: Counter[str] = Counter()
        agents: Counter[str] = Counter()
        deadlines: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
        for key, value in self.data.items():
            kind = key[0]
            if kind == REGISTRY:
                for name in value:  # a list (an older worker's) or a dict: the names either way
                    known[name] += 1
            elif kind == SEEN_AGENT:
                agents[seen_agent_key_parts(key)[2]] += 1
            elif kind == WATERMARK and value[M_TIME] is None:  # JSON has no -inf: no accepted event yet
                value[M_TIME] = float("-inf")
            elif kind == CONTACT:
                if value[W_PHASE] != ENDED:
                    continue
                topic = self.topic_of_channel.get(contact_key_parts(key)[0])
                if topic is not None:
                    deadlines.setdefault((topic, value[W_PARTITION]), []).append(
                        (value[W_ENDED] + self.s.acw_timeout_s, value[W_ENDED_OFFSET], key)
                    )
        for heap in deadlines.values():
            heapq.heapify(heap)
        for key, value in list(self.data.items()):
            if key[0] == REGISTRY and isinstance(value, list):
                # an older worker's registry held no days: each queue counts as seen at the
                # partition's watermark, so it keeps a whole retention period
                newest = self._partition_time(int(key.rsplit("|", 1)[1]))
                day = int(newest // 86400) if newest != float("-inf") else 0
                self.data[key] = dict.fromkeys(value, day)
        self.known_queues = known
        self.known_agents = agents
        self.deadlines = deadlines

    def _fire_timeouts(self, out: BatchOutput, topic: str, partition: int, watermark: float) -> None:
        """Complete every wrap-up of this partition whose deadline the watermark has passed,
        in deadline order. The ids (deadline, offset of ``ended``) only grow: a deadline enters
        the heap only while the watermark has not reached it (``_contact`` completes an ``ended``
        that arrives already past its deadline at once), so it is later than any already fired.
        A replay makes the same ones."""
        heap = self.deadlines.get((topic, partition))
        while heap and heap[0][0] < watermark:
            deadline, ended_offset, key = heapq.heappop(heap)
            raw = self.data.get(key)
            if raw is None or raw[W_PHASE] != ENDED or raw[W_ENDED_OFFSET] != ended_offset:
                continue  # completed by its wrap-up, or expired
            src = f"{topic}/{partition}/acw"
            state = ContactState.from_wire(raw)
            # the queue's and the agent's fact share the id: they go to different records
            cid = contact_key_parts(key)[1]
            for fact in _for_customer(state, cid, complete_by_timeout(state, cid), "", deadline, None):
                self._emit(out, src, int(round(deadline * 1000)), ended_offset, fact)
            wire = state.to_wire()
            self.data[key] = wire
            out.writes[key] = (state.partition, wire)

    # ---- helpers ---------------------------------------------------------------------------
    def _mark(self, topic: str, partition: int) -> list[Any]:
        key = watermark_key(topic, partition)
        mark = self.data.get(key)
        if mark is None:
            mark = new_watermark()
            self.data[key] = mark
        return mark

    def _emit(self, out: BatchOutput, src: str, offset: int, idx: int, fact: Fact) -> None:
        kind = fact.kind
        if kind in CUSTOMER_ROUTED:
            x = fact.extra or ("",)
            extra = (x[0], self._release_ms(src, fact.ts), *x[1:])
            fact = Fact(kind, fact.queue, fact.channel, fact.ts, fact.subject, fact.value, fact.late, extra)
            routed_by = fact.subject
        elif kind in AGENT_ROUTED:
            routed_by = fact.subject
        else:
            routed_by = fact.queue
        part = partition_for_queue(routed_by, self.s.partitions)
        rows = out.facts.get(part)
        if rows is None:
            rows = out.facts[part] = []
        rows.append([src, offset, idx, fact.to_wire()])

    def _release_ms(self, src: str, ts: float) -> int:
        """When the customer stage may apply a customer fact: its own time, or just after its
        partition's watermark before the event when that is later. So every fact released from
        now on is released after the watermark the partition announced last (``_announce``), and
        the customer stage, applying what is released up to the lowest announced watermark,
        applies one set in one order whatever order the partitions' facts reach it in
        (customers.py, "the customer clock")."""
        topic, partition = src.split("/")[:2]
        key = (topic, int(partition))
        before = self._before.get(key)
        if before is None:  # a timeout fired by the sweep: the watermark is the one announced
            before = self._mark(topic, int(partition))[M_TIME]
        floor = int(round(before * 1000)) + 1 if before != float("-inf") else 0
        return max(int(round(ts * 1000)), floor)

    def declare_empty(self, sources: Iterable[tuple[str, int]]) -> BatchOutput:
        """Contact partitions that hold no event at all (the worker: its assigned partitions whose
        end offset is 0; a replay in tests: those it has nothing for) told to the customer clocks,
        which otherwise wait for every contact partition to announce a watermark (customers.py):
        a partition not heard from yet may still hold facts from the beginning of time."""
        out = BatchOutput()
        if self.s.customer_key is None:
            return out
        pairs: list[Any] = []
        for topic, partition in sorted(sources):
            if topic not in self.channels or (topic, partition) in self._declared:
                continue
            mark = self.data.get(watermark_key(topic, partition))
            if mark is not None and mark[M_TIME] != float("-inf"):
                continue  # it has events: its watermark speaks for it
            self._declared.add((topic, partition))
            pairs += [f"{topic}/{partition}", -1]
        self._tell_clocks(out, pairs, 0.0)
        return out

    def _tell_clocks(self, out: BatchOutput, pairs: list[Any], ts: float) -> None:
        """One ``cu_clock`` fact with (source, watermark ms or -1 for empty) ``pairs`` to every
        facts partition: each customer clock moves once, with every partition's news."""
        if pairs:
            row = [pairs[0], pairs[1], 0, [Kind.CU_CLOCK, "", "", ts, pairs[0], 0.0, False, pairs]]
            for part in range(self.s.partitions):
                out.facts.setdefault(part, []).append(row)

    def _announce(self, out: BatchOutput, touched: Iterable[tuple[str, int]], now: float) -> None:
        """The customer clock's input: each contact partition of the batch tells every facts
        partition its watermark (customer features only), after the batch's facts. Never beyond
        the wall clock: an event from a few minutes ahead (within the future tolerance) would
        otherwise make every other partition look idle (customers.py)."""
        if self.s.customer_key is None:
            return
        pairs: list[Any] = []
        newest = float("-inf")
        for topic, partition in touched:
            if topic not in self.channels:
                continue
            watermark = min(self._mark(topic, partition)[M_TIME], now)
            if watermark == float("-inf") or self._announced.get((topic, partition), -1) >= watermark:
                continue
            self._announced[(topic, partition)] = watermark
            pairs += [f"{topic}/{partition}", int(round(watermark * 1000))]
            newest = max(newest, watermark)
        self._tell_clocks(out, pairs, newest)

    def _reject(self, out: BatchOutput, rec: Record, rejection: Rejection) -> None:
        if rec.value is not None and b'"customer"' in rec.value and rec.topic in self.channels:
            rec = self._redacted(rec)
        out.dead.append(DeadLetter(rec, rejection.reason, rejection.detail))
        out.results[(rec.topic, REJECTED)] += 1

    def _redacted(self, rec: Record) -> Record:
        """The record as its dead letter carries it: a ``customer`` is personal data, so the dead
        letter holds its hash (none without a key), like everything else ccmon writes. An input
        that is not a JSON object cannot be told apart from one that holds a number: it is kept
        whole only when it has no ``"customer"`` in it, and otherwise replaced by a note."""
        try:
            doc = orjson.loads(rec.value) if rec.value is not None else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            note = b'{"redacted": "an unreadable contact event naming a customer"}'
            return Record(rec.topic, rec.partition, rec.offset, rec.key, note)
        value = doc.get("customer")
        key = self.s.customer_key
        if isinstance(value, str) and key is not None:
            doc["customer"] = customer_hash(key, value)
        else:
            doc.pop("customer", None)
        return Record(rec.topic, rec.partition, rec.offset, rec.key, orjson.dumps(doc))

    def _over_queue_limit(self, names: Iterable[str]) -> int:
        """How many of ``names`` are new queues, when adding them would exceed the cap; 0 otherwise."""
        new = sum(1 for q in dict.fromkeys(names) if q not in self.known_queues)
        return new if new and len(self.known_queues) + new > self.s.max_queues else 0

    def _agent_limit(self, agent_id: str | None) -> Rejection | None:
        """A new agent id beyond the cap: each one would add per-agent records and series."""
        if agent_id is None or agent_id in self.known_agents or len(self.known_agents) < self.s.max_agents:
            return None
        return Rejection(
            Reason.AGENT_LIMIT,
            f"agent {agent_id[:64]!r} would exceed the limit of {self.s.max_agents} agents",
        )

    def _seen_agent(self, out: BatchOutput, rec: Record, agent_id: str, ts: float) -> None:
        """Record that an accepted event named this agent: written once a day per agent and partition."""
        key = seen_agent_key(rec.topic, rec.partition, agent_id)
        day = int(ts // 86400)
        old = self.data.get(key)
        if old is None:
            self.known_agents[agent_id] += 1
        elif old >= day:
            return
        self.data[key] = day
        out.writes[key] = (rec.partition, day)

    def _partition_time(self, partition: int) -> float:
        """The newest event time of any input topic on this partition number (the registry's clock:
        one q| record gathers the queues of the three topics' partition)."""
        newest = float("-inf")
        for topic in (*self.channels, self.s.agents_topic):
            mark = self.data.get(watermark_key(topic, partition))
            if mark is not None and mark[M_TIME] is not None and mark[M_TIME] > newest:
                newest = mark[M_TIME]
        return newest

    def _register(self, out: BatchOutput, partition: int, names: Iterable[str], ts: float) -> None:
        """Record that an accepted event of these queues was on this partition: a queue new to the
        partition is added, a known one gets the day, written once a day per queue and partition."""
        key = registry_key(partition)
        reg: dict[str, int] | None = self.data.get(key)
        if reg is None:
            reg = self.data[key] = {}
        day = int(ts // 86400)
        changed = False
        for name in names:
            old = reg.get(name)
            if old is None:
                self.known_queues[name] += 1
            elif old >= day:
                continue
            reg[name] = day
            changed = True
        if changed:
            out.writes[key] = (partition, reg)

    # ---- processing ----------------------------------------------------------------------
    def process(self, records: Iterable[Record], now: float | None = None) -> BatchOutput:
        """Process records in order. ``now`` (wall clock) is only for the future-time check and lag.

        The partitions' watermark records are written after everything else: a crash loses a
        suffix of each changelog partition, so a persisted watermark implies that the batch's
        other state of that partition persisted too, and a replay never runs ahead of its state."""
        now = time.time() if now is None else now
        out = BatchOutput()
        touched: set[tuple[str, int]] = set()
        #: (topic, partition) → its watermark record, looked up once a batch: a batch only creates
        #: one or moves it in place, and its key costs more to make than this look-up
        marks: dict[tuple[str, int], list[Any]] = {}
        for rec in records:
            channel = self.channels.get(rec.topic)
            if channel is None and rec.topic != self.s.agents_topic:
                self._reject(out, rec, Rejection(Reason.INVALID_FIELD, f"unexpected topic {rec.topic!r}"))
                continue
            where = (rec.topic, rec.partition)
            mark = marks.get(where)
            if mark is None:
                mark = marks[where] = self._mark(rec.topic, rec.partition)
            self._before[where] = mark[M_TIME]
            if rec.offset <= mark[M_DECIDED]:
                # decided already: its state and facts persisted (the mark is written after them).
                # Deciding it again against a state that has moved on would not give the same
                # answer (an event rejected for arriving too early may now fit), so it is skipped.
                out.results[(rec.topic, DUPLICATE)] += 1
                continue
            if rec.value is not None and len(rec.value) > self.s.max_event_bytes:
                self._reject(out, rec, self._too_large(rec.value))
            else:
                try:
                    if channel is not None:
                        self._contact(out, rec, channel, mark, now)
                    else:
                        self._agent(out, rec, mark, now)
                except Exception as exc:  # noqa: BLE001  # one event must never stop the worker (SPEC §1)
                    self._reject(out, rec, apply_error(exc))
            mark[M_DECIDED] = rec.offset  # rejected records too: a replay must not decide them again
            touched.add(where)
        for topic, partition in sorted(touched):
            key = watermark_key(topic, partition)
            if key in self.data:
                out.writes[key] = (partition, self.data[key])
        self._before.clear()
        self._announce(out, sorted(touched), now)
        return out

    def _too_large(self, value: bytes) -> Rejection:
        return Rejection(
            Reason.TOO_LARGE, f"event is {len(value):,} bytes (limit {self.s.max_event_bytes:,})"
        )

    def _too_old(self, ts: float, now: float) -> Rejection | None:
        """An event time older than the maximum age: nothing that old is a live contact center's,
        and times far back reach the ends of what a local date can hold (year 1 in UTC-12)."""
        if ts >= now - self.s.max_event_age_s:
            return None
        return Rejection(
            Reason.TOO_OLD,
            f"event time is {now - ts:.0f} s old (limit {self.s.max_event_age_s:.0f} s)",
        )

    def _contact(self, out: BatchOutput, rec: Record, channel: str, mark: list[Any], now: float) -> None:
        """One contact event; ``mark`` is its partition's watermark record."""
        ev = parse_contact(rec.value, now, self.s.future_tolerance_s)
        if not isinstance(ev, Rejection):
            ev = self._too_old(ev.ts, now) or ev
        if isinstance(ev, Rejection):
            self._reject(out, rec, ev)
            return
        clear: str | None = None
        customer = ev.customer
        if customer is not None:  # personal data: hashed here, before anything keeps or sends it
            key_ = self.s.customer_key
            clear = customer if self.s.customer_show_clear else None
            customer = customer_hash(key_, customer) if key_ is not None else None
        key = contact_key(channel, ev.contact_id)
        src = f"{rec.topic}/{rec.partition}"
        self._fire_timeouts(out, rec.topic, rec.partition, mark[M_TIME])  # may complete this very contact
        raw = self.data.get(key)
        if raw is not None and self._past_retention(raw[W_SEEN], mark):
            # what the sweep drops is dropped here too, so that the event meets the same state
            # whether a sweep ran before it or not (the customer of a late survey was only known
            # when none had: the crash search found it, issue 24)
            self.data.pop(key)
            out.writes[key] = (raw[W_PARTITION], None)
            raw = None
        if (
            raw is not None
            and len(raw) > W_DECIDED
            and rec.offset <= raw[W_DECIDED]
            and ev.event_id not in raw[W_IDS]
        ):
            out.results[(rec.topic, DUPLICATE)] += 1  # a replay of an event rejected already (see decided)
            return
        state = ContactState.from_wire(raw) if raw is not None else None
        if ev.queue is not None and self._over_queue_limit((ev.queue,)):
            result: Outcome | Rejection = Rejection(
                Reason.QUEUE_LIMIT, f"queue {ev.queue!r} would exceed the limit of {self.s.max_queues} queues"
            )
        elif (over := self._agent_limit(ev.agent_id)) is not None:
            result = over
        else:
            result = apply_contact(
                state,
                ev,
                partition=rec.partition,
                offset=rec.offset,
                channel=channel,
                watermark=mark[M_TIME],
                lateness_s=self.s.lateness_s,
                acw_timeout_s=self.s.acw_timeout_s,
            )
        facts: list[Fact] = []
        if isinstance(result, Rejection):
            self._reject(out, rec, result)
            if state is not None:  # remembered, so that a replay does not decide it again
                state.decided = rec.offset
                wire = state.to_wire()
                self.data[key] = wire
                out.writes[key] = (state.partition, wire)
        else:
            facts = result.facts
            state = cast("ContactState | None", result.state)  # a contact event's outcome holds a contact
            if state is not None and not result.duplicate:
                if state.customer is None and customer is not None:
                    state.customer = customer
                if state.case_id is None and ev.case_id is not None:
                    state.case_id = ev.case_id
                facts = _for_customer(state, ev.contact_id, facts, ev.type, ev.ts, clear)
            if ev.type == "ended" and not result.duplicate and state is not None and state.phase == ENDED:
                if ev.ts + self.s.acw_timeout_s < mark[M_TIME]:  # late: its wrap-up time is over already
                    done = complete_by_timeout(state, ev.contact_id)
                    facts = [*facts, *_for_customer(state, ev.contact_id, done, "", ev.ts, None)]
                else:
                    heapq.heappush(
                        self.deadlines.setdefault((rec.topic, rec.partition), []),
                        (ev.ts + self.s.acw_timeout_s, rec.offset, key),
                    )
            out.results[
                (rec.topic, DUPLICATE if result.duplicate else LATE if result.late else ACCEPTED)
            ] += 1
            if ev.ts > mark[M_TIME]:  # duplicates too: a replayed event moves time as the original did
                mark[M_TIME] = ev.ts
            if not result.duplicate:
                out.lags.append((rec.topic, now - ev.ts))
                if state is not None:  # the contact's queue (an answer names none) had an event
                    self._register(out, rec.partition, (state.queue,), ev.ts)
                if ev.agent_id is not None:
                    self._seen_agent(out, rec, ev.agent_id, ev.ts)
                assert state is not None
                wire = state.to_wire()
                self.data[key] = wire
                out.writes[key] = (state.partition, wire)
        for i, fact in enumerate(facts):
            self._emit(out, src, rec.offset, i, fact)
        mark[M_DECIDED] = rec.offset

    def _agent(self, out: BatchOutput, rec: Record, mark: list[Any], now: float) -> None:
        """One agent event; ``mark`` is its partition's watermark record."""
        ev = parse_agent(rec.value, now, self.s.future_tolerance_s)
        if not isinstance(ev, Rejection):
            ev = self._too_old(ev.ts, now) or ev
        if isinstance(ev, Rejection):
            self._reject(out, rec, ev)
            return
        new_queues = self._over_queue_limit(ev.queues)
        if new_queues:
            self._reject(
                out,
                rec,
                Rejection(
                    Reason.QUEUE_LIMIT,
                    f"{new_queues} new queue(s) would exceed the limit of {self.s.max_queues}",
                ),
            )
            return
        over = self._agent_limit(ev.agent_id)
        if over is not None:
            self._reject(out, rec, over)
            return
        key = agent_key(ev.agent_id)
        raw = self.data.get(key)
        state = AgentState.from_wire(raw) if raw is not None else None
        if state is not None and self._agent_expired(state):
            # what the sweep drops is dropped here too, so that the event meets the same state
            # whether a sweep ran before it or not
            self.data.pop(key)
            out.writes[key] = (state.partition, None)
            state = None
        result = apply_agent(
            state, ev, partition=rec.partition, watermark=mark[M_TIME], lateness_s=self.s.lateness_s
        )
        out.results[(rec.topic, DUPLICATE if result.duplicate else LATE if result.late else ACCEPTED)] += 1
        if not result.duplicate:
            out.lags.append((rec.topic, now - ev.ts))
            self._register(out, rec.partition, ev.queues, ev.ts)
            self._seen_agent(out, rec, ev.agent_id, ev.ts)
            assert isinstance(result.state, AgentState)
            wire = result.state.to_wire()
            self.data[key] = wire
            out.writes[key] = (rec.partition, wire)
        if ev.ts > mark[M_TIME]:  # duplicates too, as for contacts
            mark[M_TIME] = ev.ts
        src = f"{rec.topic}/{rec.partition}"
        for i, fact in enumerate(result.facts):
            self._emit(out, src, rec.offset, i, fact)
        mark[M_DECIDED] = rec.offset

    # ---- periodic sweep --------------------------------------------------------------------
    def _past_retention(self, ts: float, mark: list[Any] | None) -> bool:
        """State last seen at ``ts`` is past retention by its partition's watermark (``mark``):
        the sweep drops it, and an event that meets it before a sweep does drops it too."""
        return mark is not None and ts + self.s.retention_s < mark[M_TIME]

    def _agent_expired(self, held: AgentState) -> bool:
        """An agent offline for longer than the retention (one logged in is kept however long)."""
        mark = self.data.get(watermark_key(self.s.agents_topic, held.partition))
        return held.state == "offline" and self._past_retention(held.ts, mark)

    def sweep(self) -> BatchOutput:
        """Fire due ACW timeouts and drop state past retention, by each partition's watermark
        (event time), so the outcome does not depend on when the sweep runs."""
        out = BatchOutput()
        for topic, partition in list(self.deadlines):
            mark = self.data.get(watermark_key(topic, partition))
            if mark is not None:
                self._fire_timeouts(out, topic, partition, mark[M_TIME])
        expired: list[tuple[str, int]] = []
        retention = self.s.retention_s
        registries: list[str] = []
        #: partition → queues something of that partition holds open: a contact not completed,
        #: an agent logged in (kept, however long ago their last event was)
        held_open: dict[int, set[str]] = {}
        for key, raw in self.data.items():
            kind = key[0]
            if kind == CONTACT:
                source = self.topic_of_channel.get(contact_key_parts(key)[0])
                mark = self.data.get(watermark_key(source, raw[W_PARTITION])) if source is not None else None
                if self._past_retention(raw[W_SEEN], mark):
                    expired.append((key, raw[W_PARTITION]))
                elif raw[W_PHASE] in OPEN_PHASES:
                    held_open.setdefault(raw[W_PARTITION], set()).add(raw[W_QUEUE])
            elif kind == AGENT:
                held = AgentState.from_wire(raw)
                if self._agent_expired(held):
                    expired.append((key, held.partition))
                elif held.state != "offline":
                    held_open.setdefault(held.partition, set()).update(held.queues)
            elif kind == REGISTRY:
                registries.append(key)
            elif kind == SEEN_AGENT:  # an agent id this partition has not seen for a retention period
                seen_topic, seen_partition, _ = seen_agent_key_parts(key)
                mark = self.data.get(watermark_key(seen_topic, seen_partition))
                if mark is not None and (raw + 1) * 86400 + retention < mark[M_TIME]:
                    expired.append((key, seen_partition))
        for key, partition in expired:
            self.data.pop(key, None)
            out.writes[key] = (partition, None)
            if key[0] == SEEN_AGENT:
                agent = seen_agent_key_parts(key)[2]
                self.known_agents[agent] -= 1
                if self.known_agents[agent] <= 0:
                    del self.known_agents[agent]
        for key in registries:
            self._forget_queues(out, key, held_open, retention)
        return out

    def _forget_queues(
        self, out: BatchOutput, key: str, held_open: dict[int, set[str]], retention: float
    ) -> None:
        """Forget the queues of this partition's registry with no event for a retention period
        (after the day they were last seen, by the partition's newest event time) that nothing of
        the partition holds open: made-up names must not fill CCMON_MAX_QUEUES for good."""
        partition = int(key.rsplit("|", 1)[1])
        newest = self._partition_time(partition)
        reg: dict[str, int] = self.data[key]
        kept = held_open.get(partition, set())
        stale = [q for q, day in reg.items() if (day + 1) * 86400 + retention < newest and q not in kept]
        if not stale:
            return
        for queue in stale:
            del reg[queue]
            self.known_queues[queue] -= 1
            if self.known_queues[queue] <= 0:
                del self.known_queues[queue]
        if reg:
            out.writes[key] = (partition, reg)
        else:
            del self.data[key]
            out.writes[key] = (partition, None)
