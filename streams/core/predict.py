"""Prediction (SPEC §2 "Prediction"): estimated wait time, projected service level, time to breach.

Pure functions of one queue's state at one moment (:class:`QueueNow`), so that the worker, the
back-test (benchmarks/ewt_backtest.py) and the hand-computed tests share one definition.

Estimators of the wait of a contact offered now (``CCMON_EWT_ESTIMATOR``; docs/kpis.md compares
them on the back-test's days):

- ``cisco``: (contacts waiting + 1) × AHT ÷ (agents talking or ready), Cisco's published formula;
- ``asterisk``: the exponential average of answered waits Asterisk's app_queue announces
  (each answer moves it a quarter of the way: avg ← (3·avg + wait) / 4);
- ``erlang``: the contact's position behind the free agents, served by the queue's staffed agents
  at 1/AHT each (the k-th completion of N busy servers with exponential handle times is k·AHT/N);
- ``throughput``: the same position, served at the rate the queue's contacts were actually
  answered lately (the queue's own throughput, which knows what staffing counts cannot: agents
  shared with other queues and channels, breaks, misses); the staffed rate when nothing was
  answered yet.

A queue whose agents never reported a state (the chat platforms send none) has unknown, not zero,
staffing: ``erlang`` and ``throughput`` serve it at the rate it was answered lately, ``cisco`` cannot
say, and the projection does the same rather than predict that nobody will ever answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

from streams.core.erlang import service_level

__all__ = [
    "ASTERISK_KEEP",
    "ESTIMATORS",
    "Estimator",
    "LocalIntervals",
    "Outcome",
    "Projection",
    "QueueNow",
    "asterisk_update",
    "estimate",
    "estimator",
    "gamma_cdf",
    "graded_ewt",
    "interval_bounds",
    "outcomes",
    "project",
    "service_rate",
]

Estimator = Literal["cisco", "asterisk", "erlang", "throughput"]
ESTIMATORS: Final[tuple[Estimator, ...]] = get_args(Estimator)
#: Asterisk's weight of the previous average (app_queue.c recalc_holdtime: (3·old + new) / 4)
ASTERISK_KEEP: Final = 0.75
#: the projection steps through the rest of the interval this many seconds at a time: each step
#: costs a gamma tail, for every exported series on every 10-s render (10-s steps cost 3 times as
#: much and moved the back-test within its noise: docs/performance.md)
STEP_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class QueueNow:
    """What the estimators and the projection read of one queue at one moment."""

    waiting: int  #: contacts waiting now (the one being estimated not among them)
    available: int  #: agents ready
    busy: int  #: agents talking
    acw: int  #: agents in after-contact work
    aht_s: float | None  #: recent average handle time (None: nothing handled lately)
    answered_per_s: float = 0.0  #: contacts of the queue answered per second lately
    offered_per_s: float = 0.0  #: contacts offered to the queue per second lately
    hold_avg_s: float | None = None  #: Asterisk's running average of answered waits
    #: False when no agent of the queue ever reported a state (chat platforms send none: Chatwoot,
    #: libredesk): the counts above are then unknown, not zero, and the queue's answers are all
    #: there is to go by
    staffing_known: bool = True

    @property
    def staffed(self) -> int:
        return self.available + self.busy + self.acw


def estimator(name: str) -> Estimator:
    """The estimator of a configured name (streams/config.py validates it; this narrows the type)."""
    for kind in ESTIMATORS:
        if kind == name:
            return kind
    raise ValueError(f"unknown EWT estimator {name!r}")


def asterisk_update(avg: float | None, wait_s: float) -> float:
    """Asterisk's average after one more answered wait; it starts from 0 as Asterisk's does."""
    return ASTERISK_KEEP * (avg or 0.0) + (1.0 - ASTERISK_KEEP) * wait_s


def service_rate(q: QueueNow, kind: Estimator) -> float:
    """Contacts per second the queue's agents take from the queue when all are busy."""
    if not q.staffing_known:
        return q.answered_per_s
    staffed = q.staffed / q.aht_s if q.aht_s is not None and q.aht_s > 0 else 0.0
    working = q.busy + q.acw
    if kind == "throughput" and q.answered_per_s > 0 and working > 0:
        # the queue's answers come from the agents working now; all of them at this share
        return min(staffed, q.answered_per_s * q.staffed / working)
    return staffed


def estimate(kind: Estimator, q: QueueNow) -> float | None:
    """The wait, in seconds, a contact offered now is expected to have; None when the estimator
    cannot say (no handle time known, nobody to answer, no answer yet for Asterisk's)."""
    if kind == "asterisk":
        return q.hold_avg_s
    if kind == "cisco":
        serving = q.busy + q.available
        if q.aht_s is None or serving == 0:
            return None
        return (q.waiting + 1) * q.aht_s / serving
    ahead = q.waiting + 1 - q.available  #: completions the contact needs before an agent is free
    if ahead <= 0:
        return 0.0
    rate = service_rate(q, kind)
    return ahead / rate if rate > 0 else None


def graded_ewt(ahead: int, answered_before: float, span_s: float) -> float | None:
    """The EWT a contact's actual wait is graded against (docs/kpis.md "EWT error"): the contacts
    of its queue still waiting ahead of it when it was offered, answered at the rate the queue
    answered in the ``span_s`` before (``answered_before`` contacts); 0 with nobody ahead (a
    queue forms only when no agent is free), None when some wait ahead and nothing was answered.

    Every input is an event time or a window sum, never a count that depends on which facts
    reached stage 2 first: a replay after a crash grades each contact the same (the live
    estimators read the staffing now, which has no event-time history)."""
    if ahead <= 0:
        return 0.0
    if answered_before <= 0:
        return None
    return ahead * span_s / answered_before


def gamma_cdf(k: int, rate: float, t: float) -> float:
    """P(the k-th event of a Poisson process of ``rate`` comes within ``t``): Erlang(k, rate)."""
    if k <= 0:
        return 1.0 if t >= 0 else 0.0
    if t <= 0 or rate <= 0:
        return 0.0
    x = rate * t
    if k > 50 and x < k - 10 * math.sqrt(k):  # far in the tail: the sum underflows anyway
        return 0.0
    term = math.exp(-x)
    total = term
    for j in range(1, k):
        term *= x / j
        total += term
    return max(0.0, min(1.0, 1.0 - total))


@dataclass(frozen=True, slots=True)
class Outcome:
    """``weight`` expected completions at one time (one waiting contact, or the arrivals of one
    step) and the chance that each is within the threshold."""

    at: float
    hit: float
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Projection:
    interval: float | None  #: expected service level of the current interval at its end
    day: float | None  #: expected service level of the day at its end
    breach_s: float | None  #: seconds until the interval's service level is below target; None: no breach
    counted: float  #: contacts expected to count in the interval (known + expected)


def interval_bounds(now: float, zone: ZoneInfo, interval_s: int) -> tuple[float, float, float, float]:
    """(interval start, interval end, day start, day end) around ``now``: intervals are aligned to
    the local clock (from local midnight), and a day is a local day (23 or 25 hours on the days the
    clocks change; the last interval ends at midnight)."""
    local = datetime.fromtimestamp(now, zone)
    return _bounds(local, _wall_start(local, interval_s), zone, interval_s)


def _wall_start(local: datetime, interval_s: int) -> int:
    """The local clock time (seconds since local midnight) at which the interval of ``local``
    starts: the seconds on the clock since midnight, microseconds included, as the difference of
    the two naive datetimes counts them."""
    micros = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
    wall = micros / 1_000_000
    return math.floor(wall / interval_s) * interval_s


def _bounds(
    local: datetime, start_wall: int, zone: ZoneInfo, interval_s: int
) -> tuple[float, float, float, float]:
    """:func:`interval_bounds` of a local time: a function of its date, its fold and its
    interval's clock time only (``midnight`` keeps the fold, the clock times follow it)."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    day_start = midnight.timestamp()
    day_end = datetime.combine(midnight.date() + timedelta(days=1), midnight.time(), zone).timestamp()
    # wall-clock arithmetic: an aware datetime plus a timedelta moves its local clock
    start = max(day_start, (midnight + timedelta(seconds=start_wall)).timestamp())
    end = min(day_end, (midnight + timedelta(seconds=start_wall + interval_s)).timestamp())
    return start, end, day_start, day_end


class LocalIntervals:
    """The local day and service-level interval start of event times, memoized by what decides
    them: the local date, the fold (the repeated hour when the clocks go back) and the interval's
    clock time. Stage 2 needs both for every fact it counts in a window, and the datetime
    arithmetic of :func:`interval_bounds` cost more than the rest of counting it; a local time is
    still computed for each event time, so the zone's rules decide every answer."""

    #: intervals remembered (a day holds 24 to 1,440): forgotten all at once beyond that
    LIMIT: Final = 4096

    def __init__(self, zone: ZoneInfo, interval_s: int) -> None:
        self.zone = zone
        self.interval_s = interval_s
        self._memo: dict[int, tuple[str, int]] = {}

    def day_and_start(self, ts: float) -> tuple[str, int]:
        """(local date ISO, start of its interval) of ``ts``: ``int(interval_bounds(ts)[0])``."""
        local = datetime.fromtimestamp(ts, self.zone)
        start_wall = _wall_start(local, self.interval_s)
        key = (local.toordinal() * 2 + local.fold) * 86400 + start_wall
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= self.LIMIT:
                self._memo.clear()
            start = int(_bounds(local, start_wall, self.zone, self.interval_s)[0])
            hit = self._memo[key] = (local.date().isoformat(), start)
        return hit


def _steady_hit(q: QueueNow, rate: float, threshold_s: float) -> float:
    """Chance that a contact arriving with no backlog is answered within the threshold: Erlang C
    at the staffing and traffic now (computed once per projection: it costs O(agents))."""
    traffic = q.offered_per_s * (q.aht_s or 0.0)
    if q.staffed > traffic and q.aht_s:
        return service_level(q.staffed, traffic, q.aht_s, threshold_s)
    return gamma_cdf(1, rate, threshold_s)


def outcomes(
    q: QueueNow,
    waiting_since: Sequence[float],
    now: float,
    until: float,
    threshold_s: float,
    kind: Estimator,
) -> list[Outcome]:
    """Expected completions of the contacts waiting now (offered times, oldest first) and of those
    expected to arrive before ``until``, in time order, served oldest first at the queue's
    service rate (:func:`service_rate`). With nobody to answer, a waiting contact counts as a
    miss when it has waited the threshold (it is lost for the service level then)."""
    rate = service_rate(q, kind)
    out: list[Outcome] = []
    for position, offered in enumerate(waiting_since, 1):
        age = now - offered
        ahead = position - q.available
        if ahead <= 0:
            out.append(Outcome(now, 1.0 if age <= threshold_s else 0.0))
        elif rate <= 0:
            out.append(Outcome(now + max(0.0, threshold_s - age), 0.0))
        else:
            out.append(Outcome(now + ahead / rate, gamma_cdf(ahead, rate, threshold_s - age)))
    backlog0 = max(0.0, float(len(waiting_since) - q.available))
    steady = _steady_hit(q, rate, threshold_s) if q.offered_per_s > 0 else 0.0
    t = now
    while t < until and q.offered_per_s > 0:
        dt = min(STEP_S, until - t)
        mid = t + dt / 2
        backlog = max(0.0, backlog0 + (q.offered_per_s - rate) * (mid - now))
        hit = steady if backlog < 1.0 else gamma_cdf(int(backlog) + 1, rate, threshold_s)
        done = mid + (backlog + 1) / rate if backlog >= 1.0 and rate > 0 else mid
        if rate <= 0:
            done = mid + threshold_s
        out.append(Outcome(done, hit, q.offered_per_s * dt))
        t += dt
    out.sort(key=lambda o: o.at)
    return out


def project(
    q: QueueNow,
    waiting_since: Sequence[float],
    *,
    now: float,
    interval_end: float,
    day_end: float,
    interval_sums: tuple[float, float],
    day_sums: tuple[float, float],
    day_offered_per_s: float,
    threshold_s: float,
    target: float,
    kind: Estimator = "throughput",
) -> Projection:
    """Projected service level of the interval and of the day, and the time to breach.

    ``interval_sums`` and ``day_sums`` are what happened so far: (answered within the threshold,
    contacts counted: answered + abandoned − short + dequeued). The interval adds the expected
    completions before its end of the contacts waiting now and of those expected to arrive until
    then; the day adds every one of those and, after the interval, arrivals at today's average rate
    answered at the steady-state (Erlang C) service level of the current staffing. The breach time
    is 0 when the interval's service level is below the target already, else the expected moment
    after which it stays below it, when the projection is below the target; None otherwise."""
    expected = outcomes(q, waiting_since, now, interval_end, threshold_s, kind)
    hits, counted = interval_sums
    below_since: float | None = None
    if counted > 0 and hits / counted < target:
        below_since = now
    for o in expected:
        if o.at >= interval_end:
            break
        w = o.weight
        hits += o.hit * w
        counted += w
        if hits < target * counted:
            if below_since is None:
                below_since = o.at
        else:
            below_since = None
    interval = hits / counted if counted > 0 else None
    breach = None if below_since is None else max(0.0, below_since - now)
    day_hits, day_counted = day_sums
    for o in expected:
        w = o.weight
        day_hits += o.hit * w
        day_counted += w
    rest = max(0.0, day_end - interval_end) * day_offered_per_s
    if rest > 0 and q.aht_s:
        traffic = day_offered_per_s * q.aht_s
        if not q.staffing_known:
            sl = gamma_cdf(1, service_rate(q, kind), threshold_s)
        elif q.staffed > traffic:
            sl = service_level(q.staffed, traffic, q.aht_s, threshold_s)
        else:
            sl = 0.0
        day_hits += sl * rest
        day_counted += rest
    day = day_hits / day_counted if day_counted > 0 else None
    return Projection(interval, day, breach, counted)
