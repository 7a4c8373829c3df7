"""Per-queue aggregation (stage 2): facts in, counters, histograms and event-time windows out.

State lives in a flat mapping of small records (the Faust table's store in production, a dict
in tests) so that a batch rewrites only the records it touched:

    t|queue|channel            totals: counters and histograms since the state began
    b|queue|channel|start      one event-time bucket of ``bucket_s`` seconds (window sums)
    d|queue|channel|YYYY-MM-DD one day in the contact center's time zone (window sums)
    w|queue|channel            contacts waiting now: contact id → offered time
    a|queue                    agents serving the queue: agent id → [state, event time]

Every record carries ``h``: for each source partition, the id (offset, index) of the last fact
applied to it. A fact at or below that mark was applied already and is skipped, which makes
replays after a restart idempotent record by record, with no multi-record atomicity needed.
The records' layouts and their typed codecs are streams/core/layout.py's.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypedDict, TypeVar
from zoneinfo import ZoneInfo

from streams.config import KpiSettings, QueueThresholds
from streams.core import kpis
from streams.core.erlang import agents_required
from streams.core.events import AGENT_STATES, DEQUEUE_REASONS, DequeueReason, dequeue_label
from streams.core.facts import CUSTOMER_DERIVED, Fact, Kind
from streams.core.layout import (
    AT_RISK,
    BUCKET,
    CASE_CONTACT_BUCKETS,
    COUNTERS,
    CUSTOMER_TOTALS,
    DAY,
    ENDED,
    EWT_ERROR_BUCKETS,
    FIRST_RESPONSE_BUCKETS,
    HANDLE_BUCKETS,
    INTERVAL,
    QUEUE_AGENTS,
    RESOLUTION_BUCKETS,
    TOTALS,
    WAIT_BUCKETS,
    CustomerTotalsRecord,
    EndedRecord,
    GradedRecord,
    Marks,
    QueueAgentsRecord,
    TotalsRecord,
    WaitingRecord,
    WindowRecord,
    at_risk_key,
    bucket_key,
    customer_totals_key,
    day_key,
    decode_totals,
    decode_window,
    ended_key,
    graded_key,
    interval_key,
    new_customer_totals_record,
    new_ended_record,
    new_graded_record,
    new_queue_agents_record,
    new_totals,
    new_totals_record,
    new_waiting_record,
    new_window_record,
    queue_agents_key,
    queue_key_parts,
    totals_key,
    waiting_key,
)
from streams.core.predict import (
    LocalIntervals,
    QueueNow,
    estimate,
    estimator,
    graded_ewt,
    interval_bounds,
    project,
)

__all__ = [
    "COUNTERS",
    "EWT_ERROR_BUCKETS",
    "GRADED_OUTCOMES",
    "FIRST_RESPONSE_BUCKETS",
    "FactId",
    "HANDLE_BUCKETS",
    "QueueStore",
    "SeriesView",
    "TODAY",
    "WAIT_BUCKETS",
    "WINDOWS",
    "fresh",
]

#: outcomes a repeat's previous contact is counted by (SPEC §4 ``previous``)
PREVIOUS = ("handled", "abandoned", "dequeued", "other")
WINDOWS: dict[str, int] = {"5m": 300, "15m": 900, "1h": 3600}
PREDICT_WINDOW = "5m"  #: the recent arrivals and answers the prediction reads
#: the projection's arrivals are the last 2 minutes' rate when it is above the 5 minutes' one: a
#: surge shows in its first minutes (the back-test, docs/performance.md: 16 of 27 incidents
#: 5 minutes ahead instead of 8 with the rule's keep_firing_for 15m)
PREDICT_RECENT_S = 120
TODAY = "today"
ERLANG_WINDOW = "15m"

# positions in a totals record's counters (layout.COUNTERS)
C_OFFERED, C_ANSWERED, C_ABANDONED, C_SHORT, C_IN_THRESHOLD, C_HANDLED, C_TRANSFERRED = range(7)

#: how far back a contact still waiting counts ahead of one offered now in its graded EWT: a wait
#: longer than that is not counted ahead (the ``e|`` records are kept this much longer)
AHEAD_LOOKBACK_S = 1800
#: an ``e|`` bucket is graded for good (folded) this long after its offered time, wall clock: the
#: facts of its contacts and of those around them have all arrived by then (a worker catching up
#: on more than that, or a fact later than that, changes what is graded: docs/kpis.md)
FOLD_AFTER_S = 7200
#: the outcomes of a wait whose EWT is graded (ccmon_ewt_error_seconds' outcome label)
GRADED_OUTCOMES: tuple[str, ...] = (Kind.ANSWERED, Kind.ABANDONED, Kind.DEQUEUED)

FactId = tuple[str, int, int]  #: (source "topic/partition", offset, index within that offset)
R = TypeVar("R")  #: a record's type (streams/core/layout.py)


class Marked(TypedDict):
    """What every stage-2 record has: its applied-fact marks."""

    h: Marks


def _observe(hist: list[float], bounds: tuple[float, ...], value: float) -> None:
    hist[bisect.bisect_left(bounds, value)] += 1
    hist[-1] += value


def _error_hist() -> list[float]:
    return [0] * (len(EWT_ERROR_BUCKETS) + 2)


def _code(outcome: str, error: float) -> int:
    """An outcome and the histogram bucket of an error, in one small int (cached by Python)."""
    return GRADED_OUTCOMES.index(outcome) * 16 + bisect.bisect_left(EWT_ERROR_BUCKETS, error)


def _add_graded(hists: dict[str, list[float]], b: _BucketGrades) -> None:
    """A bucket's graded waits into the histograms, one by one in its order (as ``_observe``)."""
    for code, error in zip(b.codes, b.errors, strict=True):
        hist = hists.get(GRADED_OUTCOMES[code >> 4])
        if hist is None:
            hist = hists[GRADED_OUTCOMES[code >> 4]] = _error_hist()
        hist[code & 15] += 1
        hist[-1] += error


def _sl_sums(v: list[float]) -> tuple[float, float]:
    """(answered within T, counted) of a window's sums: the service level's two sides (kpis)."""
    return v[kpis.IN_THRESHOLD], v[kpis.ANSWERED] + v[kpis.ABANDONED] - v[kpis.SHORT] + v[kpis.DEQUEUED]


def fresh(rec: Marked, fid: FactId) -> bool:
    """True (and the record's mark moves) when the fact was not applied to this record yet."""
    src, off, i = fid
    marks = rec["h"]
    mark = marks.get(src)
    # (off, i) <= (mark[0], mark[1]), without making two tuples for each record of each fact
    if mark is not None and (off < mark[0] or (off == mark[0] and i <= mark[1])):
        return False
    marks[src] = [off, i]
    return True


@dataclass(slots=True)
class SeriesView:
    """Everything exported for one (queue, channel) at one moment."""

    queue: str
    channel: str
    counters: dict[str, int]
    dequeued: dict[DequeueReason, int]  #: contacts dequeued, every reason of DEQUEUE_REASONS
    missed: int  #: offers missed
    wait_hist: dict[str, list[float]]  #: outcome → per-bucket counts + sum
    handle_hist: list[float]
    first_response_hist: list[float]  #: per-bucket counts + sum of the segments' first responses
    waiting: int
    oldest_wait_s: float
    windows: dict[str, list[float]]
    agents_required: int | None
    # the customer behind the contacts (SPEC §2 "The customer")
    repeat: dict[str, int] = field(default_factory=dict)  #: by previous outcome (PREVIOUS)
    recovered: int = 0
    lost: int = 0
    fcr_decided: int = 0
    fcr_resolved: int = 0
    resolution_hist: list[float] = field(default_factory=list)
    case_contacts_hist: list[float] = field(default_factory=list)
    unrecovered: int | None = None  #: None: the series has no customer KPIs (no key, no customer)
    unrecovered_oldest_s: float | None = None
    customers: bool = False  #: whether the series exports the customer families
    customers_at_risk: int | None = None  #: of the queue (both channels show it)

    #: prediction (streams/core/predict.py), from the records above at this moment: no state of its own
    ewt_s: float | None = None  #: estimated wait of a contact offered now
    sl_projected: dict[str, float] = field(default_factory=dict)  #: horizon (interval/day) → ratio
    breach_s: float | None = None  #: seconds until the interval's service level is below target
    #: EWT error (actual − graded EWT) since the state began: outcome → per-bucket counts + sum
    ewt_error_hist: dict[str, list[float]] = field(default_factory=dict)
    #: window → (answered contacts graded, sum of |error|, sum of error), by the answer's bucket
    ewt_error: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    @property
    def sl_projected_interval(self) -> float | None:
        """The interval's projected service level (the wallboard's cell)."""
        return self.sl_projected.get("interval")


#: what ``QueueStore.view`` computes beyond the records, at read time: the window sums (windowed
#: gauges, agents required), the prediction (EWT, projected service level, breach; reads the
#: windows) and the EWT error (grades every ended wait not folded yet: the costly one)
WINDOWED, PREDICTED, GRADED = "windowed", "predicted", "graded"
VIEW_PARTS: Final = frozenset((WINDOWED, PREDICTED, GRADED))


def _no_windows() -> dict[str, list[float]]:
    return {name: [0.0] * kpis.WIDTH for name in (*WINDOWS, TODAY)}


@dataclass(slots=True)
class _Index:
    """Derived from the records; rebuilt after a rebalance or restart."""

    buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)  #: sorted starts
    days: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    series: set[tuple[str, str]] = field(default_factory=set)
    agent_queues: set[str] = field(default_factory=set)
    ended: dict[tuple[str, str], list[int]] = field(default_factory=dict)  #: sorted ``e|`` starts
    intervals: dict[tuple[str, str], set[int]] = field(default_factory=dict)  #: ``i|`` starts
    risk_queues: set[str] = field(default_factory=set)
    customer_series: set[tuple[str, str]] = field(default_factory=set)


@dataclass(slots=True)
class _BucketGrades:
    """One ``e|`` bucket's ended waits graded, in its fixed order (by entry): each graded wait's
    outcome and histogram bucket as one small int (``_code``) and its error, added to the
    histograms one by one as the fold adds them; and the answered (not late) waits' errors by the
    bucket their wait ended in, (ended, n, sum of |error|, sum of error) (the windows read those).
    Tuples: a busy series keeps ~900 of these, a quiet one a wait or two in each (~360 B then)."""

    codes: tuple[int, ...] = ()
    errors: tuple[float, ...] = ()
    ends: tuple[tuple[int, int, float, float], ...] = ()
    last_end: float = -math.inf  #: the latest ``ended`` of ``ends``: a bucket no window reaches is skipped


@dataclass(slots=True)
class _Grades:
    """A series' graded buckets kept between reads. A contact's grade reads only the waits and
    answers around its offered time, so a fact changes the grades of contacts offered at or after
    its own contact's offered (or end) time, ``dirty_from``: a scrape under load grades again the
    buckets of the last minutes, not two hours of them (a whole render at 66,537 waits kept took
    858 ms at every scrape before this, 24 ms after: docs/performance.md). Derived from the
    records, never written: a new store (restart, rebalance) grades everything once."""

    dirty_from: float = math.inf  #: buckets holding a contact offered at or after this are stale
    buckets: dict[int, _BucketGrades] = field(default_factory=dict)  #: start → its grades
    #: start → the latest offered or end time in the bucket: a bucket whose waits all ended (and
    #: began) before the stale ones' reach changes none of their grades, and is not read
    latest: dict[int, float] = field(default_factory=dict)
    #: the histograms of the ``k|`` record plus every bucket up to ``base[0]``, added in order: a
    #: read adds only the buckets after it (those of the last half hour, where facts still come).
    #: A fold adds the same buckets to ``k|`` in the same order, so it stays bit for bit valid
    #: while it is past what was folded
    base: tuple[int, dict[str, list[float]]] | None = None


class QueueStore:
    """Applies facts to the record mapping and reads KPIs back out of it."""

    def __init__(self, data: MutableMapping[str, Any], settings: KpiSettings) -> None:
        self.data = data
        self.settings = settings
        self.bucket_s = settings.bucket_s
        self.zone = ZoneInfo(settings.timezone)
        self.intervals = LocalIntervals(self.zone, settings.sl_interval_s)
        self._last_yesterday: tuple[float, str] = (math.nan, "")  #: (now, its yesterday)
        #: buckets older than this behind now cannot matter to any window any more
        self.horizon_s = (
            max(WINDOWS.values()) + settings.lateness_s + settings.future_tolerance_s + self.bucket_s
        )
        self.index = _Index()
        #: bumped whenever a series' (or a queue's agents') records may have changed: lets the
        #: exposition keep each series' text until then
        self.versions: Counter[tuple[str, str]] = Counter()
        self.agent_versions: Counter[str] = Counter()
        self.reindex()

    # ---- records -------------------------------------------------------------------------
    def reindex(self) -> None:
        """Rebuild the in-memory index from the records (after recovery or a rebalance)."""
        idx = _Index()
        for key in self.data.keys():
            self._index_key(idx, key)
        for starts in (*idx.buckets.values(), *idx.ended.values()):
            starts.sort()
        self.index = idx
        self._grades: dict[tuple[str, str], _Grades] = {}

    def _index_key(self, idx: _Index, key: str) -> None:
        parts = queue_key_parts(key)
        kind = parts[0]
        if kind == TOTALS:
            idx.series.add((parts[1], parts[2]))
        elif kind == BUCKET:
            idx.buckets.setdefault((parts[1], parts[2]), []).append(int(parts[3]))
        elif kind == DAY:
            idx.days.setdefault((parts[1], parts[2]), set()).add(parts[3])
        elif kind == QUEUE_AGENTS:
            idx.agent_queues.add(parts[1])
        elif kind == ENDED:
            idx.ended.setdefault((parts[1], parts[2]), []).append(int(parts[3]))
        elif kind == INTERVAL:
            idx.intervals.setdefault((parts[1], parts[2]), set()).add(int(parts[3]))
        elif kind == AT_RISK:
            idx.risk_queues.add(parts[1])
        elif kind == CUSTOMER_TOTALS:
            idx.customer_series.add((parts[1], parts[2]))

    def _record(self, key: str, new: Callable[[], R]) -> R:
        """The record at ``key``, typed by its codec's constructor (``new``, called when missing)."""
        rec: R | None = self.data.get(key)
        if rec is None:
            rec = self.data[key] = new()
        return rec

    _fresh = staticmethod(fresh)

    # ---- applying facts ------------------------------------------------------------------
    def local_day(self, ts: float) -> str:
        return self.intervals.day_and_start(ts)[0]

    def apply(self, fact: Fact, fid: FactId, now: float, dirty: set[str]) -> None:
        """Apply one fact; keys of the records it changed are added to ``dirty``."""
        if fact.kind == Kind.AGENT:
            key = queue_agents_key(fact.queue)
            rec = self._record(key, new_queue_agents_record)
            if self._fresh(rec, fid):
                state = fact.extra[0] if fact.extra else None
                if state is None:
                    rec["v"].pop(fact.subject, None)
                else:
                    rec["v"][fact.subject] = [state, fact.ts]
                self.index.agent_queues.add(fact.queue)
                self.agent_versions[fact.queue] += 1
                dirty.add(key)
            return
        if fact.kind in CUSTOMER_DERIVED:
            self._apply_customer(fact, fid, now, dirty)
            return
        series = (fact.queue, fact.channel)
        self.versions[series] += 1
        th = self.settings.thresholds(fact.queue)
        self._apply_totals(fact, fid, th, dirty)
        self._apply_waiting(fact, fid, dirty)
        self._apply_ended(fact, fid, now, dirty)
        if not fact.late:
            self._apply_windows(fact, fid, th, now, dirty)

    def _apply_customer(self, fact: Fact, fid: FactId, now: float, dirty: set[str]) -> None:
        """What the customer stage derived (streams/core/customers.py), for this queue."""
        kind = fact.kind
        if kind == Kind.RISK:
            key = at_risk_key(fact.queue)
            risk = self._record(key, new_queue_agents_record)
            if self._fresh(risk, fid):
                if fact.value:
                    risk["v"][fact.subject] = [fact.ts]
                else:
                    risk["v"].pop(fact.subject, None)
                self.index.risk_queues.add(fact.queue)
                self.agent_versions[fact.queue] += 1
                dirty.add(key)
            return
        series = (fact.queue, fact.channel)
        self.versions[series] += 1
        key = customer_totals_key(fact.queue, fact.channel)
        rec: CustomerTotalsRecord = self._record(key, new_customer_totals_record)
        self.index.customer_series.add(series)
        delta: list[tuple[int, int | float]] = []
        if self._fresh(rec, fid):
            v = rec["v"]
            x = fact.extra or ()
            if kind == Kind.REPEAT:
                prev = str(x[0]) if x else "other"
                v["rp"][prev] = v["rp"].get(prev, 0) + 1
                # the waiting list marks a returning customer's contact: kept a day
                back = v.setdefault("rt", {})
                for old in [c for c, t in back.items() if t < fact.ts - 86400]:
                    del back[old]
                back[fact.subject] = fact.ts
            elif kind == Kind.UNRECOVERED:
                v["u"][fact.subject] = [fact.ts, fact.value, *(x[:2] if x else ("", None))]
            elif kind == Kind.RECOVERED:
                v["rc"] += 1
                v["u"].pop(fact.subject, None)
            elif kind == Kind.LOST:
                v["lo"] += 1
                v["u"].pop(fact.subject, None)
            elif kind == Kind.FCR:
                v["fd"] += 1
                if x and x[0]:
                    v["fy"] += 1
            elif kind == Kind.RESOLUTION:
                _observe(v["rs"], RESOLUTION_BUCKETS, fact.value)
                _observe(v["cc"], CASE_CONTACT_BUCKETS, float(x[0]) if x else 1.0)
            dirty.add(key)
        if fact.late:
            return
        x = fact.extra or ()
        if kind == Kind.REPEAT:
            delta.append((kpis.REPEAT_N, 1))
        elif kind == Kind.RECOVERED:
            delta.append((kpis.RECOVERED_N, 1))
        elif kind == Kind.LOST:
            delta.append((kpis.LOST_N, 1))
        elif kind == Kind.FCR:
            delta += [(kpis.OFCR_N, 1), (kpis.OFCR_YES, 1 if x and x[0] else 0)]
        elif kind == Kind.RESOLUTION:
            delta += [(kpis.RES_N, 1), (kpis.RES_SUM, fact.value)]
        if delta:
            self._add_windows(fact, fid, delta, now, dirty)

    def _apply_totals(self, fact: Fact, fid: FactId, th: QueueThresholds, dirty: set[str]) -> None:
        if fact.kind == Kind.SURVEY:
            return
        key = totals_key(fact.queue, fact.channel)
        rec = self._record(key, new_totals_record)
        self.index.series.add((fact.queue, fact.channel))
        if not self._fresh(rec, fid):
            return
        v, kind = decode_totals(rec["v"]), fact.kind
        c = v["c"]
        if kind == Kind.OFFERED:
            c[C_OFFERED] += 1
        elif kind == Kind.ANSWERED:
            c[C_ANSWERED] += 1
            if fact.value <= th.sl_threshold_s:
                c[C_IN_THRESHOLD] += 1
            _observe(v["wa"], WAIT_BUCKETS, fact.value)
        elif kind == Kind.ABANDONED:
            c[C_ABANDONED] += 1
            if fact.value < th.short_abandon_s:
                c[C_SHORT] += 1
            _observe(v["wb"], WAIT_BUCKETS, fact.value)
        elif kind == Kind.DEQUEUED:
            reason = dequeue_label(fact.extra[0] if fact.extra else None)
            v["dq"][reason] = v["dq"].get(reason, 0) + 1
            _observe(v["wd"], WAIT_BUCKETS, fact.value)
        elif kind == Kind.MISSED:
            v["ms"] += 1
        elif kind == Kind.HANDLED:
            c[C_HANDLED] += 1
            _observe(v["hd"], HANDLE_BUCKETS, fact.value)
        elif kind == Kind.TRANSFERRED:
            c[C_TRANSFERRED] += 1
        elif kind == Kind.RESPONDED:
            _observe(v["fr"], FIRST_RESPONSE_BUCKETS, fact.value)
        dirty.add(key)

    def _apply_waiting(self, fact: Fact, fid: FactId, dirty: set[str]) -> None:
        kind = fact.kind
        if kind not in (Kind.OFFERED, Kind.ANSWERED, Kind.ABANDONED, Kind.DEQUEUED, Kind.TRANSFERRED):
            return
        key = waiting_key(fact.queue, fact.channel)
        rec = self._record(key, new_waiting_record)
        if not self._fresh(rec, fid):
            return
        if kind == Kind.OFFERED:
            before = rec["v"].get(fact.subject)
            rec["v"][fact.subject] = fact.ts
            self._stale(fact.queue, fact.channel, fact.ts if before is None else min(before, fact.ts))
        else:
            gone = rec["v"].pop(fact.subject, None)
            if gone is not None:
                self._stale(fact.queue, fact.channel, gone)
        dirty.add(key)

    def _stale(self, queue: str, channel: str, since: float) -> None:
        """Contacts offered at or after ``since`` may grade differently now: a contact waiting
        from then, or ending then, counts ahead of them, or answered before them (:meth:`_graded`)."""
        g = self._grades.get((queue, channel))
        if g is not None and since < g.dirty_from:
            g.dirty_from = since

    def _apply_ended(self, fact: Fact, fid: FactId, now: float, dirty: set[str]) -> None:
        """Keep an ended wait (offered and end times, outcome) in the ``e|`` bucket of its offered
        time, for grading its EWT (:meth:`_graded`) and for counting it ahead of later contacts;
        late ones too (flagged: the windows skip them)."""
        kind = fact.kind
        if kind not in GRADED_OUTCOMES:
            return
        offered = fact.ts - fact.value  # the wait ends at ts after ``value`` (lifecycle)
        start = int(math.floor(offered / self.bucket_s)) * self.bucket_s
        if start < now - FOLD_AFTER_S:
            # as the windows' horizon: a bucket this old may be folded already, and a backlog of
            # old input would be graded or not depending on when the expiry ran
            return
        graded: GradedRecord | None = self.data.get(graded_key(fact.queue, fact.channel))
        if (
            graded is not None
            and graded["through"] is not None
            and start < self._kept_from(graded["through"])
        ):
            return  # no contact graded from now on can have it ahead of it
        key = ended_key(fact.queue, fact.channel, start)
        rec: EndedRecord = self._record(key, new_ended_record)
        starts = self.index.ended.setdefault((fact.queue, fact.channel), [])
        pos = bisect.bisect_left(starts, start)
        if pos == len(starts) or starts[pos] != start:
            starts.insert(pos, start)
        if self._fresh(rec, fid):
            # the offered time from the fact itself: the waiting record may have lost the contact
            # already when a crash replays this fact
            rec["v"].append([offered, fact.ts, kind, 1 if fact.late else 0])
            dirty.add(key)
            self._stale(fact.queue, fact.channel, min(offered, fact.ts))
            g = self._grades.get((fact.queue, fact.channel))
            if g is not None and start in g.latest:
                g.latest[start] = max(g.latest[start], offered, fact.ts)

    def _kept_from(self, through: int) -> int:
        """The oldest ``e|`` bucket a contact not graded yet (offered after ``through``) reads:
        those ahead of it, and those answered in the 5 minutes before it (waits up to the look-back)."""
        return through - AHEAD_LOOKBACK_S - WINDOWS[PREDICT_WINDOW] - self.bucket_s

    def _graded(self, queue: str, channel: str) -> _Grades:
        """The series' buckets not folded yet, each graded (:class:`_BucketGrades`), those stale
        graded again. A bucket's grades come out bit for bit the same whatever order the facts
        came in, and whether it was graded before: its waits in a fixed order (by entry), each
        grade a function of the facts applied, never of when.

        The EWT is :func:`graded_ewt` at the contact's offered time t0, from event times only:
        ahead = the contacts offered in [t0 − AHEAD_LOOKBACK_S, t0) whose wait had not ended at
        t0 (kept in the ``e|`` buckets, or waiting now); the contacts answered in the 5 minutes
        before t0's bucket (kept there too). Each input stays until the contact is folded
        (:meth:`_fold_ended`).

        A wait that began and ended before the first stale bucket less those 5 minutes counts
        neither ahead of a stale contact (it had ended) nor among the answers before it, so only
        the buckets holding a later time (``_Grades.latest``) are read."""
        series = (queue, channel)
        g = self._grades.get(series)
        if g is None:
            g = self._grades[series] = _Grades()
        graded: GradedRecord | None = self.data.get(graded_key(queue, channel))
        through = graded["through"] if graded is not None else None
        starts = self.index.ended.get(series, [])
        live = [s for s in starts if through is None or s > through]
        kept = set(live)
        for start in [s for s in g.buckets if s not in kept]:
            del g.buckets[start]  # folded
        stale = [s for s in live if s not in g.buckets or s + self.bucket_s > g.dirty_from]
        g.dirty_from = math.inf
        if g.base is not None and (g.base[0] not in kept or (stale and stale[0] <= g.base[0])):
            g.base = None
        if not stale:
            return g
        span = WINDOWS[PREDICT_WINDOW]
        reach = stale[0] - span
        everyone: list[list[Any]] = []
        for start in starts:
            latest = g.latest.get(start)
            if latest is not None and latest < reach:
                continue
            rec: EndedRecord | None = self.data.get(ended_key(queue, channel, start))
            if rec is None:
                continue
            if latest is None:
                latest = g.latest[start] = max((max(e[0], e[1]) for e in rec["v"]), default=-math.inf)
            if latest >= reach:
                everyone += rec["v"]
        waiting_rec: WaitingRecord | None = self.data.get(waiting_key(queue, channel))
        waiting = list(waiting_rec["v"].values()) if waiting_rec is not None else []
        offered = sorted([e[0] for e in everyone] + waiting)
        ends_after = sorted(e[1] for e in everyone if e[0] < e[1])  #: waited: offered < end
        ends_at = sorted(e[1] for e in everyone if not e[0] < e[1])  #: answered at once
        # those ahead for longer than the look-back: subtracted one by one (rare)
        latest_t0 = stale[-1] + self.bucket_s - AHEAD_LOOKBACK_S
        long = [(e[0], e[1]) for e in everyone if e[0] < latest_t0 and e[1] - e[0] > AHEAD_LOOKBACK_S]
        long += [(t, math.inf) for t in waiting if t < latest_t0]
        # the answers in the 5 minutes before t0's bucket, from the ended waits kept (not the window
        # buckets: a bucket near their horizon exists or not depending on when the fact came)
        answers = sorted(e[1] for e in everyone if e[2] == Kind.ANSWERED)
        for start in stale:
            rec = self.data.get(ended_key(queue, channel, start))
            if rec is None:
                g.buckets[start] = _BucketGrades()
                continue
            before = bisect.bisect_left(answers, start) - bisect.bisect_left(answers, start - span)
            codes: list[int] = []
            errors: list[float] = []
            ends: dict[int, list[float]] = {}
            for e in sorted(rec["v"]):
                t0 = e[0]
                ahead = (
                    bisect.bisect_left(offered, t0)
                    - bisect.bisect_right(ends_after, t0)
                    - bisect.bisect_left(ends_at, t0)
                )
                if long:
                    ahead -= sum(1 for o, end in long if o < t0 - AHEAD_LOOKBACK_S and end > t0)
                ewt = graded_ewt(ahead, before, span)
                if ewt is None:
                    continue
                error = (e[1] - e[0]) - ewt
                codes.append(_code(e[2], error))
                errors.append(error)
                if e[2] == Kind.ANSWERED and not e[3]:
                    ended = int(math.floor(e[1] / self.bucket_s)) * self.bucket_s
                    acc = ends.setdefault(ended, [0, 0.0, 0.0])
                    acc[0] += 1
                    acc[1] += abs(error)
                    acc[2] += error
            g.buckets[start] = _BucketGrades(
                tuple(codes),
                tuple(errors),
                tuple((ended, int(n), a, b) for ended, (n, a, b) in sorted(ends.items())),
                max(ends, default=-math.inf),
            )
        return g

    def _ewt_errors(self, view: SeriesView, now: float) -> None:
        """The EWT error histogram (folded + not yet folded, wait by wait in order, as a fold adds
        them to the ``k|`` record, so a fold does not move the sum) and its windows, into ``view``."""
        g = self._graded(view.queue, view.channel)
        order = sorted(g.buckets)
        after: float = -math.inf  #: the buckets up to this one are in ``hist`` already
        if g.base is not None:
            after, hist = float(g.base[0]), {o: list(h) for o, h in g.base[1].items()}
        else:
            graded: GradedRecord | None = self.data.get(graded_key(view.queue, view.channel))
            hist = {
                o: list(graded["v"][o]) if graded is not None and o in graded["v"] else _error_hist()
                for o in GRADED_OUTCOMES
            }
        # the base moves to the last bucket half an hour before the newest
        settled = bisect.bisect_right(order, order[-1] - AHEAD_LOOKBACK_S) - 1 if order else -1
        for i, start in enumerate(order):
            if start <= after:
                continue
            _add_graded(hist, g.buckets[start])
            if i == settled:
                g.base = (start, {o: list(h) for o, h in hist.items()})
        current = int(math.floor(now / self.bucket_s)) * self.bucket_s
        reach = current - max(WINDOWS.values())
        sums = {name: [0, 0.0, 0.0] for name in WINDOWS}
        for start in order:
            b = g.buckets[start]
            if b.last_end <= reach:
                continue
            for ended, n, a, e in b.ends:
                for name, width in WINDOWS.items():
                    if ended > current - width:
                        acc = sums[name]
                        acc[0] += n
                        acc[1] += a
                        acc[2] += e
        view.ewt_error_hist = hist
        view.ewt_error = {name: (int(n), a, b) for name, (n, a, b) in sums.items() if n}

    def _fold_ended(self, cutoff: float, gone: list[str], changed: list[str]) -> None:
        """Grade for good the contacts offered in the ``e|`` buckets before ``cutoff`` (now −
        FOLD_AFTER_S) into the ``k|`` record, one write (its histograms and ``through`` move
        together); a contact still waiting then is never graded, nor one whose end arrives after.
        The ``e|`` records no contact graded later reads go after that write: one a crash left
        behind is below ``through`` and read only for what was ahead."""
        fold_before = cutoff
        for (q, ch), starts in self.index.ended.items():
            n = bisect.bisect_left(starts, fold_before)
            key = graded_key(q, ch)
            rec: GradedRecord | None = self.data.get(key)
            through = rec["through"] if rec is not None else None
            fresh_starts = [s for s in starts[:n] if through is None or s > through]
            if fresh_starts:
                rec = self._record(key, new_graded_record)
                g = self._graded(q, ch)
                for start in fresh_starts:
                    _add_graded(rec["v"], g.buckets[start])
                rec["through"] = through = fresh_starts[-1]
                changed.append(key)
                self.versions[(q, ch)] += 1
            if through is None:
                continue
            m = bisect.bisect_left(starts, self._kept_from(through))
            kept = self._grades.get((q, ch))
            for start in starts[:m]:
                ekey = ended_key(q, ch, start)
                dropped: EndedRecord | None = self.data.pop(ekey, None)
                if dropped is None:
                    continue
                gone.append(ekey)
                if kept is not None:
                    kept.latest.pop(start, None)
                    # an answer counts before the contacts of the 5 minutes after it: gone, it
                    # changes their grades (the waits it ended count ahead of no one not folded)
                    for e in dropped["v"]:
                        if e[2] == Kind.ANSWERED and e[1] + WINDOWS[PREDICT_WINDOW] > through:
                            self._stale(q, ch, e[1])
            del starts[:m]

    def _apply_windows(
        self, fact: Fact, fid: FactId, th: QueueThresholds, now: float, dirty: set[str]
    ) -> None:
        kind, value = fact.kind, fact.value
        if kind == Kind.TRANSFERRED:
            return
        # counts stay ints, as the interpreter adds them: typed ``float``, mypyc would carry each 1
        # as a double and write 1.0 (a float object per sum, and other changelog bytes)
        delta: list[tuple[int, int | float]] = []
        if kind == Kind.OFFERED:
            delta.append((kpis.OFFERED, 1))
        elif kind == Kind.ANSWERED:
            delta += [(kpis.ANSWERED, 1), (kpis.WAIT_SUM, value)]
            if value <= th.sl_threshold_s:
                delta.append((kpis.IN_THRESHOLD, 1))
        elif kind == Kind.ABANDONED:
            delta.append((kpis.ABANDONED, 1))
            if value < th.short_abandon_s:
                delta.append((kpis.SHORT, 1))
        elif kind == Kind.DEQUEUED:
            delta.append((kpis.DEQUEUED, 1))
        elif kind == Kind.MISSED:
            delta.append((kpis.MISSED, 1))
        elif kind == Kind.HANDLED:
            delta += [(kpis.HANDLED, 1), (kpis.HANDLE_SUM, value)]
        elif kind == Kind.RESPONDED:
            delta += [(kpis.FR_N, 1), (kpis.FR_SUM, value)]
        elif kind == Kind.SURVEY:
            csat, nps, resolved, ces = (*(fact.extra or ()), None, None, None, None)[:4]
            if csat is not None:
                delta += [(kpis.CSAT_N, 1), (kpis.CSAT_POS, 1 if csat >= 4 else 0)]
            if nps is not None:
                delta += [
                    (kpis.NPS_N, 1),
                    (kpis.NPS_PROMOTERS, 1 if nps >= 9 else 0),
                    (kpis.NPS_DETRACTORS, 1 if nps <= 6 else 0),
                ]
            if resolved is not None:
                delta += [(kpis.FCR_N, 1), (kpis.FCR_YES, 1 if resolved else 0)]
            if ces is not None:
                delta += [(kpis.CES_N, 1), (kpis.CES_SUM, ces)]
        if delta:
            self._add_windows(fact, fid, delta, now, dirty)

    def _add_windows(
        self, fact: Fact, fid: FactId, delta: list[tuple[int, int | float]], now: float, dirty: set[str]
    ) -> None:
        """Add one fact's sums to its event-time bucket and its local day."""
        queue, channel, index = fact.queue, fact.channel, self.index
        series = (queue, channel)
        targets: list[str] = []
        start = int(math.floor(fact.ts / self.bucket_s)) * self.bucket_s
        if start >= now - self.horizon_s:
            targets.append(bucket_key(queue, channel, start))
            starts = index.buckets.get(series)
            if starts is None:
                starts = index.buckets[series] = []
            pos = bisect.bisect_left(starts, start)
            if pos == len(starts) or starts[pos] != start:
                starts.insert(pos, start)
        day, istart = self.intervals.day_and_start(fact.ts)
        if day >= self._yesterday(now):
            targets.append(day_key(queue, channel, day))
            # the service level by interval (the wallboard's chart of today)
            targets.append(interval_key(queue, channel, istart))
            days = index.days.get(series)
            istarts = index.intervals.get(series)
            if days is None:
                days = index.days[series] = set()
            if istarts is None:
                istarts = index.intervals[series] = set()
            days.add(day)
            istarts.add(istart)
        data = self.data
        for key in targets:
            rec: WindowRecord | None = data.get(key)
            if rec is None:
                rec = data[key] = new_window_record()
            if fresh(rec, fid):
                vec = decode_window(rec["v"])
                for i, d in delta:
                    vec[i] += d
                dirty.add(key)

    def _yesterday(self, now: float) -> str:
        """The local date before ``now``'s: kept for the last ``now`` asked, since each fact of a
        batch asks it with the batch's clock."""
        last_now, yesterday = self._last_yesterday
        if now != last_now:
            today = datetime.fromtimestamp(now, self.zone).date()
            yesterday = (today - timedelta(days=1)).isoformat()
            self._last_yesterday = (now, yesterday)
        return yesterday

    # ---- expiry --------------------------------------------------------------------------
    def expire(self, now: float) -> tuple[list[str], list[str]]:
        """Drop buckets no window can reach, days before yesterday, and agents offline for longer
        than the retention. Returns (deleted keys, rewritten keys)."""
        gone: list[str] = []
        changed: list[str] = []
        for queue in self.index.agent_queues:
            key = queue_agents_key(queue)
            rec: QueueAgentsRecord | None = self.data.get(key)
            if rec is None:
                continue
            stale = [
                a
                for a, (state, ts) in rec["v"].items()
                if state == "offline" and ts + self.settings.retention_s < now
            ]
            for agent in stale:
                del rec["v"][agent]
            if stale:
                changed.append(key)
                self.agent_versions[queue] += 1
        cutoff = now - self.horizon_s
        self._fold_ended(now - FOLD_AFTER_S, gone, changed)
        for (q, ch), starts in self.index.buckets.items():
            n = bisect.bisect_left(starts, cutoff)
            for start in starts[:n]:
                key = bucket_key(q, ch, start)
                if self.data.pop(key, None) is not None:
                    gone.append(key)
            if n:
                self.versions[(q, ch)] += 1
            del starts[:n]
        yesterday = self._yesterday(now)
        for (q, ch), istarts in self.index.intervals.items():
            for istart in [i for i in istarts if self.local_day(i) < yesterday]:
                istarts.discard(istart)
                if self.data.pop(interval_key(q, ch, istart), None) is not None:
                    gone.append(interval_key(q, ch, istart))
        for (q, ch), days in self.index.days.items():
            for day in [d for d in days if d < yesterday]:
                days.discard(day)
                key = day_key(q, ch, day)
                if self.data.pop(key, None) is not None:
                    gone.append(key)
                    self.versions[(q, ch)] += 1
        return gone, changed

    # ---- reading -------------------------------------------------------------------------
    def window_sums(self, queue: str, channel: str, now: float) -> dict[str, list[float]]:
        """Sums for each window at ``now``. A rolling window W holds the W / bucket_s most recent
        buckets, the current one included (and buckets ahead of now, within the future tolerance)."""
        out: dict[str, list[float]] = {}
        starts = self.index.buckets.get((queue, channel), [])
        current = int(math.floor(now / self.bucket_s)) * self.bucket_s
        for name, width in WINDOWS.items():
            acc = [0.0] * kpis.WIDTH
            for start in starts[bisect.bisect_right(starts, current - width) :]:
                bucket: WindowRecord | None = self.data.get(bucket_key(queue, channel, start))
                if bucket is not None:
                    for i, x in enumerate(bucket["v"]):
                        acc[i] += x
            out[name] = acc
        today: WindowRecord | None = self.data.get(day_key(queue, channel, self.local_day(now)))
        out[TODAY] = decode_window(list(today["v"])) if today is not None else [0.0] * kpis.WIDTH
        return out

    def intervals_today(self, queue: str, channel: str, now: float) -> list[tuple[int, float | None]]:
        """(start, service level or None when nothing counted) of today's intervals up to now's, in
        the contact center's time zone (``CCMON_SL_INTERVAL_MIN``)."""
        current, _, day_start, _ = interval_bounds(now, self.zone, self.settings.sl_interval_s)
        out: list[tuple[int, float | None]] = []
        for start in sorted(self.index.intervals.get((queue, channel), ())):
            if day_start <= start <= current:
                rec: WindowRecord | None = self.data.get(interval_key(queue, channel, start))
                if rec is not None:
                    hits, counted = _sl_sums(decode_window(list(rec["v"])))
                    out.append((start, hits / counted if counted > 0 else None))
        return out

    def series(self) -> Iterator[tuple[str, str]]:
        return iter(sorted(self.index.series))

    def view(self, queue: str, channel: str, now: float, parts: frozenset[str] = VIEW_PARTS) -> SeriesView:
        """The series at ``now``; with ``parts`` a subset of ``VIEW_PARTS``, what the others compute
        is left out (zero windows, no prediction, no EWT error): a scrape that asks for a few
        families (``/metrics?name[]=``) does not pay for grading every ended wait."""
        tot: TotalsRecord | None = self.data.get(totals_key(queue, channel))
        v = decode_totals(tot["v"].copy()) if tot is not None else new_totals()
        waiting_rec: WaitingRecord | None = self.data.get(waiting_key(queue, channel))
        waiting = waiting_rec["v"] if waiting_rec is not None else {}
        oldest = max(0.0, now - min(waiting.values())) if waiting else 0.0
        windowed = WINDOWED in parts
        windows = self.window_sums(queue, channel, now) if windowed else _no_windows()
        dequeued = {reason: v["dq"].get(reason, 0) for reason in DEQUEUE_REASONS}
        cust: CustomerTotalsRecord | None = self.data.get(customer_totals_key(queue, channel))
        cv = cust["v"] if cust is not None else new_customer_totals_record()["v"]
        calls = cv["u"]
        view = SeriesView(
            queue,
            channel,
            dict(zip(COUNTERS, v["c"], strict=False)),
            dequeued,
            v["ms"],
            {"answered": v["wa"], "abandoned": v["wb"], "dequeued": v["wd"]},
            v["hd"],
            v["fr"],
            len(waiting),
            oldest,
            windows,
            self._agents_required(queue, windows[ERLANG_WINDOW]) if windowed else None,
            {prev: cv["rp"].get(prev, 0) for prev in PREVIOUS},
            cv["rc"],
            cv["lo"],
            cv["fd"],
            cv["fy"],
            cv["rs"],
            cv["cc"],
        )
        if cust is not None:
            view.unrecovered = len(calls)
            view.unrecovered_oldest_s = max(0.0, now - min(c[0] for c in calls.values())) if calls else 0.0
            view.customers = True
        if queue in self.index.risk_queues or cust is not None:
            view.customers_at_risk = self.at_risk(queue)
        if PREDICTED in parts and windowed:
            self._predict(view, sorted(waiting.values()), now)
        if GRADED in parts:
            self._ewt_errors(view, now)
        return view

    def has_customers(self, queue: str, channel: str) -> bool:
        """Whether the series has customer KPIs (a deployment without a key exports none)."""
        return (queue, channel) in self.index.customer_series

    def callbacks(self) -> list[tuple[str, str, str, list[Any]]]:
        """(queue, channel, contact id, [abandoned at, wait, customer hash, number]) of every
        abandon not yet recovered, oldest first: the call-back list."""
        rows = []
        for queue, channel in self.index.customer_series:
            rec: CustomerTotalsRecord | None = self.data.get(customer_totals_key(queue, channel))
            if rec is not None:
                rows += [(queue, channel, cid, entry) for cid, entry in rec["v"]["u"].items()]
        rows.sort(key=lambda r: (r[3][0], r[0], r[1], r[2]))
        return rows

    def returning(self, queue: str, channel: str) -> dict[str, float]:
        """Contacts of the series whose customer had another contact within R (a day's worth)."""
        rec: CustomerTotalsRecord | None = self.data.get(customer_totals_key(queue, channel))
        return rec["v"].get("rt", {}) if rec is not None else {}

    def at_risk(self, queue: str) -> int:
        rec: QueueAgentsRecord | None = self.data.get(at_risk_key(queue))
        return len(rec["v"]) if rec is not None else 0

    def _predict(self, view: SeriesView, waiting_since: list[float], now: float) -> None:
        """EWT, projected service level and time to breach (docs/kpis.md "Prediction"), read from
        the waiting contacts, the queue's agents and the windows: exact whenever those are."""
        queue, channel, windows = view.queue, view.channel, view.windows
        recent, erlang = windows[PREDICT_WINDOW], windows[ERLANG_WINDOW]
        counts = self.agent_counts(queue)
        span = WINDOWS[PREDICT_WINDOW]
        # the last 2 minutes' arrivals, as the windows count them (the buckets ahead of now too)
        current = int(math.floor(now / self.bucket_s)) * self.bucket_s
        starts = self.index.buckets.get((queue, channel), [])
        surge = answers = 0.0
        for recent_start in starts[bisect.bisect_right(starts, current - PREDICT_RECENT_S) :]:
            bucket: WindowRecord | None = self.data.get(bucket_key(queue, channel, recent_start))
            if bucket is not None:
                surge += bucket["v"][kpis.OFFERED]
                answers += bucket["v"][kpis.ANSWERED]
        staffing_known = queue in self.index.agent_queues
        answered_per_s = recent[kpis.ANSWERED] / span
        if not staffing_known:  # the answers are the capacity: on the same horizon as the arrivals
            answered_per_s = max(answered_per_s, answers / PREDICT_RECENT_S)
        q = QueueNow(
            view.waiting,
            counts.get("available", 0),
            counts.get("busy", 0),
            counts.get("acw", 0),
            kpis.aht(erlang),
            answered_per_s,
            max(recent[kpis.OFFERED] / span, surge / PREDICT_RECENT_S),
            staffing_known=staffing_known,
        )
        view.ewt_s = estimate(estimator(self.settings.ewt_estimator), q)
        th = self.settings.thresholds(queue)
        start, end, day_start, day_end = interval_bounds(now, self.zone, self.settings.sl_interval_s)
        interval = [0.0] * kpis.WIDTH
        for bucket_start in starts:
            if bucket_start >= start:
                bucket = self.data.get(bucket_key(queue, channel, bucket_start))
                if bucket is not None:
                    for i, x in enumerate(bucket["v"]):
                        interval[i] += x
        today = windows[TODAY]
        p = project(
            q,
            waiting_since,
            now=now,
            interval_end=end,
            day_end=day_end,
            interval_sums=_sl_sums(interval),
            day_sums=_sl_sums(today),
            day_offered_per_s=today[kpis.OFFERED] / max(1.0, now - day_start),
            threshold_s=th.sl_threshold_s,
            target=th.sl_target,
        )
        if p.interval is not None:
            view.sl_projected["interval"] = p.interval
        if p.day is not None:
            view.sl_projected["day"] = p.day
        view.breach_s = p.breach_s

    def _agents_required(self, queue: str, window: list[float]) -> int | None:
        aht = kpis.aht(window)
        if aht is None or aht <= 0:
            return None
        th = self.settings.thresholds(queue)
        return agents_required(
            window[kpis.OFFERED], WINDOWS[ERLANG_WINDOW], aht, th.sl_threshold_s, th.sl_target
        )

    def agents(self) -> Iterator[tuple[str, dict[str, int]]]:
        """(queue, state → number of agents) for every queue with agent records."""
        for queue in sorted(self.index.agent_queues):
            yield queue, self.agent_counts(queue)

    def agent_counts(self, queue: str) -> dict[str, int]:
        rec: QueueAgentsRecord | None = self.data.get(queue_agents_key(queue))
        counts: dict[str, int] = dict.fromkeys(AGENT_STATES, 0)
        if rec is not None:
            for state, _ in rec["v"].values():
                counts[state] = counts.get(state, 0) + 1
        return counts

    def queues(self) -> set[str]:
        return {q for q, _ in self.index.series} | self.index.agent_queues
