"""Per-agent state (stage 2 of the agent view): per-agent facts in, one record per agent out.

An agent's own events are keyed by agent, the contacts it handles by contact, so stage 1 sees
them on different partitions. It routes every per-agent fact (``Kind.AG_*``) to the facts
partition of the agent id, where one record per agent gathers them, in the changelog-backed
table ``ccmon-agents``:

    p|agent_id   {"h": applied-fact marks per source, "v": the agent (below)}

    s, r, n, q, t   state, reason, name, queues, and when the state began (None until the first
                    state event: an agent known only from the contacts it answered)
    c               contacts in hand: contact id → [queue, channel, phase, since]
    z               the latest event time of any fact applied (retention counts from here)
    tot             [handled, handle seconds, missed offers] since the record began
    ss              state → seconds spent in it since the record began (closed intervals)
    d               local day (CCMON_TIMEZONE) → [handled, handle seconds, missed, {state: seconds}]

Replays are exact the way queue records are (docs/architecture.md rule 3): the record keeps, per
source, the id of the last fact applied to it and skips facts at or below it.

Retention is in event time, like stage 1's: a record expires once the newest event time the
store has applied (its watermark) is a retention period past the record's ``z``, never by the
wall clock. Deleting a record deletes its applied-fact marks, and a worker catching up on days-old
input (a backlog, a replay) would otherwise drop an agent between two of its facts and, after a
crash, apply the replayed ones again to a new record: counted twice, or the totals restarted.

Time in a state is accounted from event times: when a state event arrives, the interval since
the previous state's start is added to that state, split at local midnights. The current state
runs until ``now`` when read. "Today" is the local day of ``now``, like the ``today`` window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from streams.config import KpiSettings
from streams.core.events import AGENT_STATES, LOGGED_IN_STATES
from streams.core.facts import Fact, Kind
from streams.core.layout import AGENT_RECORD, agent_of_record, agent_record_key
from streams.core.queues import FactId, fresh

__all__ = [
    "AgentRow",
    "AgentStore",
]

H_HANDLED, H_HANDLE_S, H_MISSED, D_STATES = 0, 1, 2, 3
#: states that count as occupied, and those that count as logged in (occupancy's denominator)
OCCUPIED = ("busy", "acw")
LOGGED_IN = LOGGED_IN_STATES


#: how far past now the days of a state interval are walked (module doc of _account): two days
#: beyond the ``today`` of any clock within a day of this one
WALK_AHEAD_S = 2 * 86400.0

agent_key = agent_record_key  #: the agent table's key (streams.core.layout)


def _new_agent() -> dict[str, Any]:
    return {
        "s": None,
        "r": None,
        "n": None,
        "q": [],
        "t": None,
        "c": {},
        "tot": [0, 0.0, 0],
        "ss": {},
        "d": {},
        "z": float("-inf"),
    }


@dataclass(slots=True)
class AgentRow:
    """One agent as the agent view and /metrics show it at one moment."""

    agent: str
    name: str | None
    state: str | None  #: None: only seen answering or missing contacts, no state event yet
    reason: str | None
    since: float | None
    queues: list[str]
    contacts: list[dict[str, Any]]  #: in hand, latest first: id, queue, channel, phase, since
    handled_today: int
    handle_s_today: float
    missed_today: int
    state_s_today: dict[str, float]  #: the current state included, until now
    handled_total: int
    handle_s_total: float
    missed_total: int
    state_s_total: dict[str, float]  #: the current state included, until now

    @property
    def aht_today(self) -> float | None:
        return self.handle_s_today / self.handled_today if self.handled_today else None

    @property
    def occupancy_today(self) -> float | None:
        """(busy + acw) / time in any state but offline, today; None before any such time."""
        logged_in = sum(self.state_s_today.get(s, 0.0) for s in LOGGED_IN)
        if logged_in <= 0:
            return None
        return sum(self.state_s_today.get(s, 0.0) for s in OCCUPIED) / logged_in


class AgentStore:
    """Applies per-agent facts to the record mapping and reads agent rows back out of it."""

    def __init__(self, data: MutableMapping[str, Any], settings: KpiSettings) -> None:
        self.data = data
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self._day_span: tuple[float, float, str] = (0.0, 0.0, "")  #: the last day looked up: [start, end)
        #: (now, the oldest day kept at that now, when that day began, the end of the days walked)
        self._keep: tuple[float, str, float, float] = (float("nan"), "", 0.0, 0.0)
        #: the newest event time applied (rebuilt from the records after recovery: it may come out
        #: lower than before, which only delays expiry)
        self.watermark = max(
            (z for rec in data.values() if (z := rec["v"]["z"]) is not None), default=float("-inf")
        )

    # ---- days ------------------------------------------------------------------------------
    def local_day(self, ts: float) -> str:
        """The local date of ``ts``; the last day's bounds are kept, since facts come in time order."""
        start, end, day = self._day_span
        if start <= ts < end:
            return day
        day = datetime.fromtimestamp(ts, self.zone).date().isoformat()
        self._day_span = (self._midnight_of(ts), self._midnight_after(ts), day)
        return day

    def _midnight_after(self, ts: float) -> float:
        """The first local midnight after ``ts`` (DST-safe: midnight of the next local date)."""
        day = datetime.fromtimestamp(ts, self.zone).date() + timedelta(days=1)
        return datetime.combine(day, dtime(0), self.zone).timestamp()

    def split_days(self, start: float, end: float) -> Iterator[tuple[str, float]]:
        """(local day, seconds) of the interval [start, end), cut at local midnights."""
        while start < end:
            day = self.local_day(start)
            # the bounds local_day keeps are those of start's day: their end is the next midnight
            cut = min(end, self._day_span[1])
            yield day, cut - start
            start = cut

    def _midnight_of(self, ts: float) -> float:
        """The local midnight that began the day of ``ts``."""
        return datetime.combine(datetime.fromtimestamp(ts, self.zone).date(), dtime(0), self.zone).timestamp()

    def _yesterday(self, now: float) -> str:
        return (datetime.fromtimestamp(now, self.zone).date() - timedelta(days=1)).isoformat()

    # ---- applying facts --------------------------------------------------------------------
    def apply(self, fact: Fact, fid: FactId, now: float, dirty: set[str]) -> None:
        """Apply one per-agent fact; the key of the record it changed is added to ``dirty``."""
        key = agent_key(fact.subject)
        rec: Any = self.data.get(key)
        if rec is None:
            rec = self.data[key] = {"h": {}, "v": _new_agent()}
        if not fresh(rec, fid):
            return
        v, kind = rec["v"], fact.kind
        if fact.ts > v["z"]:
            v["z"] = fact.ts
            if fact.ts > self.watermark:
                self.watermark = fact.ts
        if self._keep[0] != now:
            yesterday = self._yesterday(now)
            self._keep = (now, yesterday, self._midnight_of(now - 86400.0), now + WALK_AHEAD_S)
        keep_from = self._keep[1]
        if kind == Kind.AG_STATE:
            state, reason, name, queues = fact.extra  # type: ignore[misc]
            if v["s"] is not None and fact.ts > v["t"]:
                self._account(v, v["s"], v["t"], fact.ts, keep_from)
            v["s"], v["r"], v["n"], v["q"], v["t"] = state, reason, name, list(queues), fact.ts
        elif kind == Kind.AG_CONTACT:
            cid, phase = fact.extra  # type: ignore[misc]
            v["c"][cid] = [fact.queue, fact.channel, phase, fact.ts]
        elif kind == Kind.AG_DONE:
            v["c"].pop(fact.extra[0], None)  # type: ignore[index]
            v["tot"][H_HANDLED] += 1
            v["tot"][H_HANDLE_S] += fact.value
            self._count_day(v, fact, keep_from, ((H_HANDLED, 1), (H_HANDLE_S, fact.value)))
        elif kind == Kind.AG_MISSED:
            v["tot"][H_MISSED] += 1
            self._count_day(v, fact, keep_from, ((H_MISSED, 1),))
        dirty.add(key)

    def _day(self, v: dict[str, Any], day: str) -> list[Any]:
        d: list[Any] | None = v["d"].get(day)
        if d is None:
            d = v["d"][day] = [0, 0.0, 0, {}]
        return d

    def _count_day(
        self, v: dict[str, Any], fact: Fact, keep_from: str, deltas: tuple[tuple[int, float], ...]
    ) -> None:
        """Today's figures follow the ``today`` window: late facts count in totals only."""
        if fact.late or fact.ts < self._keep[2]:
            return
        day = self.local_day(fact.ts)
        if day < keep_from:
            return
        d = self._day(v, day)
        for i, delta in deltas:
            d[i] += delta

    def _account(self, v: dict[str, Any], state: str, start: float, end: float, keep_from: str) -> None:
        """A closed interval in ``state``: into the totals, and per local day (days still kept).

        Only the days still kept are walked: from yesterday's midnight to ``WALK_AHEAD_S`` past
        now, whatever the event times (an agent whose previous state began in 1970 walked 20,000
        days, 0.25 s, on the event loop). Cutting the interval there changes nothing kept: days
        before yesterday are dropped, and stage 1 accepts no event more than
        CCMON_FUTURE_TOLERANCE_S ahead of its clock."""
        v["ss"][state] = v["ss"].get(state, 0.0) + (end - start)
        _, _, keep_start, walk_end = self._keep
        for day, seconds in self.split_days(max(start, keep_start), min(end, walk_end)):
            if day >= keep_from:
                per_state = self._day(v, day)[D_STATES]
                per_state[state] = per_state.get(state, 0.0) + seconds

    # ---- expiry ----------------------------------------------------------------------------
    def expire(self, now: float) -> tuple[list[str], list[str]]:
        """Drop days before yesterday (of ``now``: today's figures follow the wall clock), and, by
        the watermark (event time), contacts in hand with no news for a retention period (their
        contact state is gone from stage 1 too) and agents offline (or never in a state) for a
        retention period with nothing in hand. Returns (deleted keys, rewritten keys)."""
        gone: list[str] = []
        changed: list[str] = []
        keep_from = self._yesterday(now)
        retention, clock = self.settings.retention_s, self.watermark
        for key, rec in list(self.data.items()):
            v = rec["v"]
            touched = False
            for day in [d for d in v["d"] if d < keep_from]:
                del v["d"][day]
                touched = True
            for cid in [c for c, (_, _, _, since) in v["c"].items() if since + retention < clock]:
                del v["c"][cid]
                touched = True
            if not v["c"] and v["s"] in (None, "offline") and v["z"] + retention < clock:
                del self.data[key]
                gone.append(key)
                continue
            if touched:
                changed.append(key)
        return gone, changed

    # ---- reading ---------------------------------------------------------------------------
    def agent_ids(self, owned: Callable[[str], bool] | None = None) -> list[str]:
        """Agent ids with a record, sorted; ``owned`` filters them (a worker exports only the agents
        of the facts partitions it owns: with several workers, each agent comes from one)."""
        ids = sorted(agent_of_record(key) for key in self.data.keys() if key[0] == AGENT_RECORD)
        return [a for a in ids if owned(a)] if owned is not None else ids

    def row(self, agent_id: str, now: float) -> AgentRow | None:
        rec = self.data.get(agent_key(agent_id))
        if rec is None:
            return None
        v = rec["v"]
        today = self.local_day(now)
        d = v["d"].get(today) or [0, 0.0, 0, {}]
        state_today: dict[str, float] = {s: float(d[D_STATES].get(s, 0.0)) for s in AGENT_STATES}
        state_total: dict[str, float] = {s: float(v["ss"].get(s, 0.0)) for s in AGENT_STATES}
        state, since = v["s"], v["t"]
        if state is not None and since is not None and now > since:
            state_total[state] += now - since
            state_today[state] += now - max(since, self._midnight_of(now))
        contacts = [
            {"id": cid, "queue": q, "channel": ch, "phase": phase, "since": ts}
            for cid, (q, ch, phase, ts) in sorted(v["c"].items(), key=lambda kv: (-kv[1][3], kv[0]))
        ]
        tot = v["tot"]
        return AgentRow(
            agent_id,
            v["n"],
            state,
            v["r"],
            since,
            list(v["q"]),
            contacts,
            int(d[H_HANDLED]),
            float(d[H_HANDLE_S]),
            int(d[H_MISSED]),
            state_today,
            int(tot[H_HANDLED]),
            float(tot[H_HANDLE_S]),
            int(tot[H_MISSED]),
            state_total,
        )

    def rows(self, now: float, owned: Callable[[str], bool] | None = None) -> list[AgentRow]:
        out = []
        for agent_id in self.agent_ids(owned):
            row = self.row(agent_id, now)
            if row is not None:
                out.append(row)
        return out
