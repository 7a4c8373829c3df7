"""The customer behind the contacts (SPEC §2 "The customer"): who they are, kept as a keyed hash.

A customer identifier (a caller number, an account or visitor id) is personal data. Stage 1
replaces it at intake, before the lifecycle, the facts topic or any table sees it, by an
HMAC-SHA256 under the operator's secret (CCMON_CUSTOMER_KEY_FILE): the same customer gives the
same hash on every topic and worker, so their contacts still meet, while the hash cannot be
turned back into the number without the key, and numbers are not enumerable without it either
(a plain SHA-256 of a phone number is: there are only ~10^10 of them). Without a key the
customer is dropped, and with it every customer feature (docs/security.md).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections import Counter
from collections.abc import Callable, MutableMapping
from typing import Any, Final, cast

from streams.config import KpiSettings
from streams.core.facts import Fact, Kind
from streams.core.layout import partition_for_queue
from streams.core.queues import PREVIOUS, Marked, fresh

__all__ = ["HASH_CHARS", "CustomerStage", "PREVIOUS", "clock_key", "customer_hash", "customer_key"]

#: hex characters of a customer's hash kept: 128 bits, no collision among billions of customers
HASH_CHARS: Final = 32


def customer_hash(key: bytes, customer: str) -> str:
    """The customer's keyed hash (hex): what ccmon keeps of them in place of the identifier."""
    return hmac.new(key, customer.encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_CHARS]


# ---- the customer stage --------------------------------------------------------------------
# A customer record (``u|hash``, on the facts partition of the hash) holds only what the windows
# need, each item dropped when its window has passed by event time:
#   "o": contact id → [queue, channel, offered ms, outcome, handled queue, handled channel,
#        answered ms, counted as a repeat, the number in the clear (only with
#        CCMON_CUSTOMER_SHOW_CLEAR, else None)]
#        the contacts offered within R (the repeat window; a handled one is decided for FCR then)
#   "a": contact id → [queue, channel, abandoned ms, wait]  abandons within W not yet recovered
#   "s": [[ms, signal, queue]]  at-risk signals of the last 7 days: "L" lost, "R" repeat, "S" survey
#   "k": case → [first offered ms, contacts, resolved]  cases with a contact within R
#   "r": the queue it counts at risk for (None: not)
# Nothing else: whatever a record holds lives in a window, so that a record gone when its last
# window ended and one kept a moment longer (by a fact held in it) decide alike. (Records of
# an earlier version may still hold "q", the queue of the latest contact, and "n", the number:
# read for their signals and abandons without a queue or number of their own, never written.)
# Times are integer milliseconds: deadlines order the timer facts, whose ids must only grow.

CUSTOMER_REC = "u"
CLOCK_REC = "n"


def customer_key(digest: str) -> str:
    return f"u|{digest}"


def clock_key(partition: int) -> str:
    """A facts partition's customer clock: {"w": source → its last announced watermark (ms),
    "e": sources declared empty, "o": offset of the last facts message applied}, written after
    its customer records and before their tombstones."""
    return f"n|{partition}"


def _ms(ts: float) -> int:
    return int(round(ts * 1000))


def new_customer() -> dict[str, Any]:
    return {"h": {}, "v": {"o": {}, "a": {}, "s": [], "k": {}, "r": None, "p": []}}


#: one derived fact as sent back to the facts topic: (facts partition, row)
Derived = tuple[int, list[Any]]

#: an item of a customer record, in the order they are decided: (key ms, rank, which). A held
#: fact (rank 0) is keyed by its release, a window's end (rank 1) by its deadline + the lateness.
Item = tuple[int, int, tuple[Any, ...]]


def _number(contact: list[Any] | None, v: dict[str, Any]) -> Any:
    """The number in the clear of a contact (None unless shown in the clear)."""
    if contact is not None and len(contact) > 8:
        return contact[8]
    return v.get("n")  # a record of an earlier version: the latest contact's


def _latest_queue(v: dict[str, Any]) -> str | None:
    """The queue a customer at risk counts for: that of their latest contact or signal still in
    its window (by time, then name). Only windowed items decide it: a queue remembered beyond its
    window would depend on how long the record happened to live."""
    latest = [(c[2], c[0]) for c in v["o"].values()]
    latest += [(sig[0], sig[2] if len(sig) > 2 else v.get("q")) for sig in v["s"]]
    named = [item for item in latest if item[1] is not None]
    return max(named)[1] if named else None


class CustomerStage:
    """Applies customer facts to customer records and derives the per-queue facts.

    The customer clock (docs/architecture.md, "The customer stage"): facts of several stage-1
    partitions reach a facts partition interleaved in whatever order the partitions progressed,
    which differs between runs. So a customer fact is not applied when it arrives but held in its
    record until the clock reaches its *release* (its time, or just after its stage-1 partition's
    watermark before its event when that is later: intake._release_ms); the clock is the lowest
    watermark the stage-1 partitions announced to this facts partition (``cu_clock`` facts),
    leaving out those more than ``customer_idle_s`` behind the median one (idle). Every fact
    released up to the clock has then arrived, and the record applies them, and decides what
    time decides (lost after W, FCR after R, expiry: at the deadline plus the lateness), in one
    order: (key, rank, fact id or item), the same in every run. A fact whose release the clock
    has reached already (a partition it was not waiting for: idle, or empty when declared) is
    applied at once, the one case a run can differ from another.

    Exactness under replays: each record keeps the stage-2 marks (a replayed fact is skipped); the
    clock record keeps the offset of the last facts message applied (a replayed message is
    skipped); derived facts take the ids (``facts/partition/cu``, key ms, hash prefix × 4096 + j),
    which only grow because items are decided in (key, hash) order from a per-partition heap
    (rebuilt from the records after recovery); a fact applied at once derives under the id of the
    fact (facts topic/partition, facts offset, index × 4096 + j)."""

    def __init__(self, data: MutableMapping[str, Any], settings: KpiSettings, facts_topic: str) -> None:
        self.data = data
        self.s = settings
        self.topic = facts_topic
        self.r_ms = _ms(settings.repeat_window_s)
        self.w_ms = _ms(settings.recovery_window_s)
        self.risk_ms = _ms(settings.at_risk_window_s)
        self.late_ms = _ms(settings.lateness_s)
        self.idle_ms = _ms(settings.customer_idle_s)
        #: every contact partition: the clock waits for each to announce a watermark or be empty
        self.expected = [
            f"{t}/{p}" for t in sorted(settings.contact_topics) for p in range(settings.partitions)
        ]
        #: facts partition → heap of (key ms, hash); hash → its scheduled key
        self.heaps: dict[int, list[tuple[int, str]]] = {}
        self.scheduled: dict[str, int] = {}
        self.clocks: dict[int, int] = {}  #: facts partition → its clock (ms)
        self.counts: Counter[int] = Counter()  #: facts partition → customers held
        self.skipped = 0  #: customer facts of new customers beyond the cap (not exact over restarts)
        self.applied_late = 0  #: facts applied on arrival, their release passed (a lagging partition)
        self.out: list[Derived] = []
        self._partition = 0
        self._offset = 0
        self._index = 0
        self._skip = False
        self.reindex()

    def reindex(self) -> None:
        """The heaps, clocks and counts from the records (after recovery or a rebalance)."""
        self.heaps, self.scheduled, self.counts, self.clocks = {}, {}, Counter(), {}
        for key, rec in self.data.items():
            if key[0] == CUSTOMER_REC:
                digest = key[2:]
                part = partition_for_queue(digest, self.s.partitions)
                self.counts[part] += 1
                self._schedule(part, digest, rec["v"])
            elif key[0] == CLOCK_REC and isinstance(rec, dict):
                self.clocks[int(key[2:])] = self._clock(rec)

    def _clock(self, rec: dict[str, Any]) -> int:
        """The lowest announced watermark, idle partitions left out (-1: none announced). Idle is
        measured from the median partition, not the newest: one event from minutes ahead (within
        the future tolerance) moves one partition's watermark there, and must not make all the
        others look idle."""
        announced, empty = rec["w"], rec.get("e", ())
        if any(src not in announced and src not in empty for src in self.expected):
            return -1  # a partition not heard from: it may hold facts from the beginning of time
        marks: list[int] = sorted(announced.values())
        if not marks:
            return -1
        median = marks[len(marks) // 2]
        return min(m for m in marks if m >= median - self.idle_ms)

    # ---- a facts message ---------------------------------------------------------------------
    def begin(self, partition: int, offset: int) -> None:
        """The facts message that the next customer facts come from (their derived facts' ids)."""
        self._partition, self._offset, self._index = partition, offset, 0

    def take(self) -> list[Derived]:
        out, self.out = self.out, []
        return out

    def apply(self, fact: Fact, fid: tuple[str, int, int], now: float, dirty: set[str]) -> None:
        """One customer fact (held until the clock passes its release) or clock announcement."""
        index = self._index
        self._index += 1
        part = self._partition
        ckey = clock_key(part)
        mark = self.data.get(ckey)
        if not isinstance(mark, dict):  # none yet (or an older worker's list: its clock restarts)
            mark = self.data[ckey] = {"w": {}, "e": [], "o": -1}
        if index == 0:
            self._skip = self._offset <= mark["o"]
        if self._skip:
            return  # a facts message decided already (rule 3): its records and facts persisted
        mark["o"] = self._offset
        dirty.add(ckey)
        x = fact.extra or ("", 0)
        if fact.kind == Kind.CU_CLOCK:  # extra: (source, watermark ms) pairs, flat
            for j in range(0, len(x) - 1, 2):
                src, ms = str(x[j]), int(x[j + 1])
                if ms < 0:  # empty so far (intake.declare_empty)
                    if src not in mark.setdefault("e", []):
                        mark["e"].append(src)
                elif ms > mark["w"].get(src, -1):
                    mark["w"][src] = ms
            clock = self._clock(mark)
            if clock > self.clocks.get(part, -1):
                self.clocks[part] = clock
                self._fire(part, clock, dirty)
            return
        release = int(x[1])
        src = fid[0]
        if release <= mark["w"].get("/".join(src.split("/", 2)[:2]), -1):
            # sent before its partition announced a watermark at or past it, so it came before that
            # announcement: a stage-1 replay sending it again (its customer may be gone since)
            return
        key = customer_key(fact.subject)
        rec = self.data.get(key)
        if rec is None:
            if self.counts[part] >= self.s.customer_limit:
                self.skipped += 1
                return
            rec = new_customer()
            self.data[key] = rec
            self.counts[part] += 1
        if not fresh(cast(Marked, rec), fid):  # a customer record carries the stage-2 marks ("h")
            return
        bare = Fact(
            fact.kind, fact.queue, fact.channel, fact.ts, fact.subject, fact.value, fact.late, (x[0], *x[2:])
        )
        clock = self.clocks.get(part, -1)
        v = rec["v"]
        dirty.add(key)
        if release > clock:
            v.setdefault("p", []).append([release, *fid, bare.to_wire()])
            self._schedule(part, fact.subject, v)
            return
        self.applied_late += 1
        emit = self._emitter(f"{self.topic}/{part}", self._offset, index * 4096)
        self._apply(bare, _ms(fact.ts), v, emit)
        self._due(v, clock, emit)
        self._settle(part, fact.subject, rec, release, emit, dirty)

    def _emitter(self, src: str, offset: int, base: int) -> Callable[[Fact], None]:
        seq = [base]

        def emit(derived: Fact) -> None:
            row = [src, offset, seq[0], derived.to_wire()]
            seq[0] += 1
            self.out.append((partition_for_queue(derived.queue, self.s.partitions), row))

        return emit

    def _apply(self, fact: Fact, ts: int, v: dict[str, Any], emit: Callable[[Fact], None]) -> None:
        kind, x = fact.kind, fact.extra or ()
        cid = str(x[0]) if x else ""
        late = fact.late  # beyond the lateness by stage 1's watermark: in the totals, not the windows
        if kind == Kind.CU_OFFERED:
            if cid in v["o"]:
                return
            earlier = [c for c in v["o"].values() if ts - self.r_ms <= c[2] < ts]
            repeat = bool(earlier)
            if repeat:
                prev = max(earlier, key=lambda c: c[2])
                outcome = prev[3] if prev[3] in PREVIOUS else "other"
                emit(Fact(Kind.REPEAT, fact.queue, fact.channel, fact.ts, cid, 0.0, late, (outcome,)))
                v["s"].append([ts, "R", fact.queue])
            number = x[2] if len(x) > 2 else None
            v["o"][cid] = [fact.queue, fact.channel, ts, "", None, None, None, repeat, number]
            case = str(x[1]) if len(x) > 1 and x[1] is not None else "#" + cid
            held = v["k"].get(case)
            if held is None:
                v["k"][case] = [ts, 1, False]
            else:
                held[0] = min(held[0], ts)
                held[1] += 1
        elif kind == Kind.CU_ANSWERED:
            held = v["o"].get(cid)
            if held is not None and held[3] == "":
                held[3], held[6] = "answered", ts
            for other in sorted(v["a"], key=lambda c: (v["a"][c][2], c)):
                q, ch, at, _ = v["a"][other]
                if other != cid and at <= ts <= at + self.w_ms:
                    del v["a"][other]
                    emit(Fact(Kind.RECOVERED, q, ch, fact.ts, other, (ts - at) / 1000, late))
        elif kind == Kind.CU_LEFT:
            outcome = str(x[1]) if len(x) > 1 else "abandoned"
            held = v["o"].get(cid)
            if held is not None:
                held[3] = outcome
            # an answer of the customer within W after it that arrived first (another topic, late)
            answers = sorted(
                (c[6], other)
                for other, c in v["o"].items()
                if other != cid and c[6] is not None and ts <= c[6] <= ts + self.w_ms
            )
            if answers and cid not in v["a"]:
                at = answers[0][0]
                emit(Fact(Kind.RECOVERED, fact.queue, fact.channel, at / 1000, cid, (at - ts) / 1000, late))
            elif cid not in v["a"]:
                v["a"][cid] = [fact.queue, fact.channel, ts, fact.value]
                emit(
                    Fact(
                        Kind.UNRECOVERED,
                        fact.queue,
                        fact.channel,
                        fact.ts,
                        cid,
                        fact.value,
                        late,
                        (fact.subject, _number(held, v)),
                    )
                )
        elif kind == Kind.CU_HANDLED:
            held = v["o"].get(cid)
            if held is not None:
                held[3], held[4], held[5] = "handled", fact.queue, fact.channel
        elif kind == Kind.CU_SURVEY:
            csat = x[1] if len(x) > 1 else None
            nps = x[2] if len(x) > 2 else None
            if (csat is not None and csat <= 2) or (nps is not None and nps <= 6):
                v["s"].append([ts, "S", fact.queue])
        elif kind == Kind.CU_RESOLVED:
            case = str(x[1]) if len(x) > 1 and x[1] is not None else "#" + cid
            held = v["k"].get(case)
            if held is not None and not held[2]:
                held[2] = True
                emit(
                    Fact(
                        Kind.RESOLUTION,
                        fact.queue,
                        fact.channel,
                        fact.ts,
                        case,
                        # whole seconds: sums of them are exact in any order (the queue gets
                        # resolutions of several customer partitions interleaved differently
                        # on every replay), where sums of fractions differ in the last bit
                        float(max(0, round((ts - held[0]) / 1000))),
                        late,
                        (held[1],),
                    )
                )

    # ---- time ----------------------------------------------------------------------------
    def _items(self, v: dict[str, Any]) -> list[Item]:
        """Everything the record holds that is still to be decided, in the order it will be."""
        late = self.late_ms
        items: list[Item] = [(h[0], 0, (h[1], h[2], h[3], n)) for n, h in enumerate(v.get("p", ()))]
        items += [(c[2] + self.r_ms + late, 1, ("o", cid)) for cid, c in v["o"].items()]
        items += [(a[2] + self.w_ms + late, 1, ("a", cid)) for cid, a in v["a"].items()]
        items += [(sig[0] + self.risk_ms + late, 1, ("s", str(n))) for n, sig in enumerate(v["s"])]
        items += [(k[0] + self.r_ms + late, 1, ("k", case)) for case, k in v["k"].items()]
        return items

    def _schedule(self, part: int, digest: str, v: dict[str, Any]) -> None:
        items = self._items(v)
        if not items:
            return
        nxt = min(items)[0]
        if self.scheduled.get(digest) != nxt:
            self.scheduled[digest] = nxt
            heapq.heappush(self.heaps.setdefault(part, []), (nxt, digest))

    def _due(self, v: dict[str, Any], upto: int, emit: Callable[[Fact], None]) -> None:
        """Decide every item of one record keyed at most ``upto``, in order; what one of them makes
        (a window that an old fact opens and that has ended already) is decided in turn."""
        while True:
            items = self._items(v)
            if not items:
                return
            key, rank, which = min(items)
            if key > upto:
                return
            if rank == 0:
                held = v["p"].pop(which[3])
                fact = Fact.from_wire(held[4])
                self._apply(fact, _ms(fact.ts), v, emit)
                continue
            # a window's end, counted at the deadline, in the windows too
            what, name = which
            deadline = key - self.late_ms
            if what == "o":
                q, ch, offered, outcome, hq, hch = v["o"].pop(name)[:6]
                if outcome == "handled":
                    again = any(offered < c[2] <= deadline for c in v["o"].values())
                    emit(Fact(Kind.FCR, hq or q, hch or ch, deadline / 1000, name, 0.0, False, (not again,)))
            elif what == "a":
                q, ch, _, _ = v["a"].pop(name)
                emit(Fact(Kind.LOST, q, ch, deadline / 1000, name, 0.0, False))
                v["s"].append([deadline, "L", q])
            elif what == "s":
                v["s"] = [sig for sig in v["s"] if sig[0] + self.risk_ms > deadline]
            else:
                del v["k"][name]

    def _settle(
        self,
        part: int,
        digest: str,
        rec: dict[str, Any],
        at: int,
        emit: Callable[[Fact], None],
        dirty: set[str],
    ) -> None:
        """After a change: the at-risk state follows, and the record is rescheduled, or deleted
        when nothing is left."""
        v = rec["v"]
        signals = [sig[1] for sig in v["s"]]
        at_risk = "L" in signals or "S" in signals or signals.count("R") >= 2
        want = _latest_queue(v) if at_risk else None
        if want != v["r"]:
            if v["r"] is not None:
                emit(Fact(Kind.RISK, v["r"], "", at / 1000, digest, 0.0))
            if want is not None:
                emit(Fact(Kind.RISK, want, "", at / 1000, digest, 1.0))
            v["r"] = want
        key = customer_key(digest)
        dirty.add(key)
        if not (v["o"] or v["a"] or v["s"] or v["k"] or v.get("p")) and v["r"] is None:
            self.data.pop(key, None)
            self.counts[part] -= 1
            self.scheduled.pop(digest, None)
        else:
            self._schedule(part, digest, v)

    def _fire(self, part: int, clock: int, dirty: set[str]) -> None:
        """Decide, in (key, hash) order, every item keyed up to the clock."""
        heap = self.heaps.get(part)
        while heap and heap[0][0] <= clock:
            key, digest = heapq.heappop(heap)
            if self.scheduled.get(digest) != key:
                continue  # superseded by an earlier key, or the record is gone
            del self.scheduled[digest]
            rec = self.data.get(customer_key(digest))
            if rec is None:
                continue
            emit = self._emitter(f"{self.topic}/{part}/cu", key, int(digest[:12], 16) * 4096)
            self._due(rec["v"], key, emit)
            self._settle(part, digest, rec, key, emit, dirty)
