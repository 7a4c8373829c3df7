"""Back-test of the prediction (issue 25): simulated days replayed through the pure core.

    python -m benchmarks.ewt_backtest [--days N] [--seed S] [--scenario FILE] [--json FILE]

Each day is the scenario ``producers/scenarios/backtest.toml`` (the default center, the day
profile, surges on every voice queue, a staffing drop, a quiet night) from a fixed midnight, one
seed per day: the same table at any hour, on any machine. The replay keeps what the worker keeps
(contacts waiting, agents by state per queue, handled and answered contacts in event-time windows,
Asterisk's running average) and, every 15 s (Prometheus' rule evaluation), asks the core
(streams/core/predict.py) for the projection. It reports:

- for each estimator, the error (actual wait − EWT) of every answered contact's EWT at its
  ``offered``: mean absolute error and bias, on the same contacts (those all estimators had an
  estimate for);
- for the predictive alert (``CcmonServiceLevelBreachPredicted``: a breach projected for the
  interval, with at least ``MIN_COUNTED`` contacts counted over 15 minutes, for 2 minutes, kept
  firing for 15; the arrivals at the higher of the last 5 and 2 minutes' rates) and for the
  reactive one (``CcmonServiceLevelLow``: the 15-minute service level below target with at least
  20 contacts, for 10 minutes): breaches caught, false alarms, median lead time.

A breach is an interval (30 min, aligned to the clock) whose service level ends below the target
with at least ``MIN_COUNTED`` contacts counted; it crosses the target at the moment after which its
running service level stays below it. An alert catches it when it is firing at some moment
from the interval's start to 15 minutes after its end; its lead time is the crossing minus that
moment (negative: after). An alert episode that catches no breach is a false alarm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from producers.scenario import Scenario, load, parse
from producers.simulate import Simulator
from streams.config import KpiSettings
from streams.core.predict import ESTIMATORS, Estimator, QueueNow, asterisk_update, estimate, interval_bounds
from streams.core.predict import project as project_sl

DAY0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  #: a Monday's midnight: the days' clock
EVAL_S = 15.0  #: Prometheus' rule evaluation interval (streams/resources/prometheus/prometheus.yml)
THRESHOLD_S, TARGET, SHORT_S = 20.0, 0.8, 5.0  #: the SPEC's defaults
INTERVAL_S = 1800
MIN_COUNTED = 20  #: the volume below which neither alert speaks (the reactive rule's guard)
PREDICTIVE_FOR_S = 120.0
PREDICTIVE_KEEP_S = 900.0
REACTIVE_FOR_S = 600.0
CATCH_AFTER_S = 900.0  #: an alert firing this long after a breached interval's end still caught it
AHT_WINDOW_S, RATE_WINDOW_S, SL_WINDOW_S = 900.0, 300.0, 900.0
OFFERED_WINDOW_S = 300.0  #: arrivals per second over this window (the worker's 5m window)
#: and over this one when its rate is above (streams/core/queues.py PREDICT_RECENT_S)
RECENT_WINDOW_S = 120.0
#: the projection's service rate (streams/core/predict.py project: the queue's throughput)
PROJECTION_KIND: Estimator = "throughput"


@dataclass
class Series:
    """What the replay keeps of one (queue, channel), as the worker's stage 2 does."""

    waiting: dict[str, float] = field(default_factory=dict)  #: contact id → offered time
    handled: deque[tuple[float, float]] = field(default_factory=deque)  #: (ts, handle s)
    answered: deque[float] = field(default_factory=deque)
    offered: deque[float] = field(default_factory=deque)
    completions: deque[tuple[float, int]] = field(default_factory=deque)  #: (ts, 1 within T / 0)
    hold_avg: float | None = None
    intervals: dict[float, list[float]] = field(default_factory=dict)  #: start → [hits, counted]
    running: dict[float, list[tuple[float, float]]] = field(default_factory=dict)  #: start → (ts, SL)
    day: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  #: hits, counted, offered


@dataclass
class Alert:
    """An alert's state over the replay: pending since, firing episodes [(start, end)]."""

    hold_s: float  #: the rule's ``for``
    keep_s: float = 0.0  #: the rule's ``keep_firing_for``
    pending: float | None = None
    episodes: list[list[float]] = field(default_factory=list)
    firing: bool = False
    last_true: float = float("-inf")

    def step(self, now: float, condition: bool) -> None:
        if not condition:
            self.pending = None
            if self.firing and now - self.last_true > self.keep_s:
                self.firing = False
            if self.firing:
                self.episodes[-1][1] = now
            return
        self.last_true = now
        if self.pending is None:
            self.pending = now
        if self.firing or now - self.pending >= self.hold_s:
            if not self.firing:
                self.episodes.append([now, now])
                self.firing = True
            self.episodes[-1][1] = now


def _trim(dq: deque[Any], since: float, key: Any = None) -> None:
    while dq and (dq[0] if key is None else dq[0][0]) < since:
        dq.popleft()


class Replay:
    def __init__(
        self,
        scenario: Scenario,
        zone: ZoneInfo,
        offered_window_s: float = OFFERED_WINDOW_S,
        recent_window_s: float | None = RECENT_WINDOW_S,
        predictive_for_s: float = PREDICTIVE_FOR_S,
        predictive_keep_s: float = PREDICTIVE_KEEP_S,
    ) -> None:
        self.zone = zone
        self.offered_window_s = offered_window_s
        self.recent_window_s = recent_window_s
        self.series: dict[tuple[str, str], Series] = {}
        self.agents: dict[str, tuple[str, list[str]]] = {}
        self.contacts: dict[str, list[Any]] = {}  #: cid → [series key, answered ts or None]
        self.ewt: dict[str, dict[Estimator, float | None]] = {}
        self.errors: list[tuple[str, dict[Estimator, float | None], float]] = []  #: outcome, ewts, wait
        self.alerts: dict[tuple[str, str], dict[str, Alert]] = {}
        self.channels = {(q.name, q.channel) for q in scenario.queues}
        for key in self.channels:
            self.series[key] = Series()
            self.alerts[key] = {
                "predictive": Alert(predictive_for_s, predictive_keep_s),
                "reactive": Alert(REACTIVE_FOR_S),
            }

    # ---- what the worker would read ----------------------------------------------------------
    def now_of(self, key: tuple[str, str], now: float) -> QueueNow:
        s = self.series[key]
        _trim(s.handled, now - AHT_WINDOW_S, key=0)
        _trim(s.answered, now - RATE_WINDOW_S)
        _trim(s.offered, now - self.offered_window_s)
        counts = {"available": 0, "busy": 0, "acw": 0}
        for state, queues in self.agents.values():
            if key[0] in queues and state in counts:
                counts[state] += 1
        aht = sum(h for _, h in s.handled) / len(s.handled) if s.handled else None
        offered_per_s = len(s.offered) / self.offered_window_s
        if self.recent_window_s is not None:  # the last minutes' rate when it is above the 5m one
            since, recent = now - self.recent_window_s, 0
            for ts in reversed(s.offered):
                if ts < since:
                    break
                recent += 1
            offered_per_s = max(offered_per_s, recent / self.recent_window_s)
        return QueueNow(
            len(s.waiting),
            counts["available"],
            counts["busy"],
            counts["acw"],
            aht,
            len(s.answered) / RATE_WINDOW_S,
            offered_per_s,
            s.hold_avg,
        )

    # ---- events ------------------------------------------------------------------------------
    def event(self, topic: str, ev: dict[str, Any]) -> None:
        ts = ev["ts"] / 1000
        if topic == "agents":
            self.agents[ev["agent_id"]] = (ev["state"], ev["queues"])
            return
        channel = "voice" if topic == "calls" else "chat"
        cid, etype = ev["contact_id"], ev["type"]
        if etype in ("offered", "transferred"):
            if etype == "transferred":
                self._left(cid, ts, None)
            key = (ev["queue"], channel)
            q = self.now_of(key, ts)
            self.ewt[cid] = {kind: estimate(kind, q) for kind in ESTIMATORS}
            s = self.series[key]
            s.waiting[cid] = ts
            s.offered.append(ts)
            s.day[2] += 1
            self.contacts[cid] = [key, None]
        elif etype in ("answered", "abandoned", "dequeued"):
            self._left(cid, ts, etype)
        elif etype == "wrapup_ended":
            key, answered = self.contacts[cid]
            if answered is not None:
                self.series[key].handled.append((ts, ts - answered))

    def _left(self, cid: str, ts: float, outcome: str | None) -> None:
        key, answered = self.contacts[cid]
        s = self.series[key]
        offered = s.waiting.pop(cid, None)
        if offered is None:  # transferred while handled: handle time up to the transfer
            if answered is not None:
                s.handled.append((ts, ts - answered))
            return
        if outcome is None:
            return
        wait = ts - offered
        self.errors.append((outcome, self.ewt.pop(cid), wait))
        if outcome == "answered":
            self.contacts[cid][1] = ts
            s.answered.append(ts)
            s.hold_avg = asterisk_update(s.hold_avg, wait)
        if outcome == "abandoned" and wait < SHORT_S:
            return
        hit = 1 if outcome == "answered" and wait <= THRESHOLD_S else 0
        start = interval_bounds(ts, self.zone, INTERVAL_S)[0]
        sums = s.intervals.setdefault(start, [0.0, 0.0])
        sums[0] += hit
        sums[1] += 1
        s.running.setdefault(start, []).append((ts, sums[0] / sums[1]))
        s.completions.append((ts, hit))
        s.day[0] += hit
        s.day[1] += 1

    # ---- every evaluation ------------------------------------------------------------------
    def evaluate(self, now: float) -> None:
        start, end, day_start, day_end = interval_bounds(now, self.zone, INTERVAL_S)
        for key, s in self.series.items():
            q = self.now_of(key, now)
            _trim(s.completions, now - SL_WINDOW_S, key=0)
            sums = s.intervals.get(start, [0.0, 0.0])
            since_midnight = max(1.0, now - day_start)
            p = project_sl(
                q,
                sorted(s.waiting.values()),
                now=now,
                interval_end=end,
                day_end=day_end,
                interval_sums=(sums[0], sums[1]),
                day_sums=(s.day[0], s.day[1]),
                day_offered_per_s=s.day[2] / since_midnight,
                threshold_s=THRESHOLD_S,
                target=TARGET,
                kind=PROJECTION_KIND,
            )
            alerts = self.alerts[key]
            n = len(s.completions)
            sl15 = sum(h for _, h in s.completions) / n if n else 1.0
            # the rules: a breach projected (the gauge is there) with the reactive rule's volume guard
            alerts["predictive"].step(now, p.breach_s is not None and n >= MIN_COUNTED)
            alerts["reactive"].step(now, n >= MIN_COUNTED and sl15 < TARGET)

    def new_day(self) -> None:
        for s in self.series.values():
            s.day = [0.0, 0.0, 0.0]


def breaches(s: Series) -> list[tuple[float, float]]:
    """(interval start, crossing time) of every breached interval of a series."""
    out = []
    for start, (hits, counted) in s.intervals.items():
        if counted >= MIN_COUNTED and hits / counted < TARGET:
            out.append((start, _final_crossing(s.running[start])))
    return out


def _final_crossing(running: list[tuple[float, float]]) -> float:
    """The moment after which the running service level stays below the target."""
    crossing: float | None = None
    for ts, sl in running:
        if sl >= TARGET:
            crossing = None
        elif crossing is None:
            crossing = ts
    assert crossing is not None, "a breached interval ends below the target"
    return crossing


@dataclass
class Score:
    caught: int = 0
    missed: int = 0
    false_alarms: int = 0
    episodes: int = 0
    leads: list[float] = field(default_factory=list)


def score(replay: Replay, name: str, into: Score) -> None:
    for key, s in replay.series.items():
        episodes = replay.alerts[key][name].episodes
        used = [False] * len(episodes)
        for start, crossing in breaches(s):
            window = (start, start + INTERVAL_S + CATCH_AFTER_S)
            first = None
            for i, (a, b) in enumerate(episodes):
                if a < window[1] and b >= window[0]:
                    used[i] = True
                    first = max(a, window[0]) if first is None else first
            if first is None:
                into.missed += 1
            else:
                into.caught += 1
                into.leads.append(crossing - first)
        into.episodes += len(episodes)
        into.false_alarms += used.count(False)


def score_incidents(
    replay: Replay, scenario: Scenario, day0: float, into: dict[str, list[float | None]]
) -> None:
    """For every incident and every series it hits (a surge: its queue's; a staffing drop: all), the
    first breach crossing from its start to 30 minutes after its end, and each alert's lead on it
    (None: the alert did not fire from the incident's start to 15 minutes after the crossing)."""
    for inc in scenario.incidents:
        start, end = day0 + inc.start_s, day0 + inc.start_s + inc.duration_s + INTERVAL_S
        for key, s in replay.series.items():
            if inc.queue is not None and key[0] != inc.queue:
                continue
            crossings = sorted(c for _, c in breaches(s) if start <= c < end)
            if not crossings:
                continue
            for name, lead in into.items():
                fired = [
                    max(a, start)
                    for a, b in replay.alerts[key][name].episodes
                    if b >= start and a <= crossings[0] + CATCH_AFTER_S
                ]
                lead.append(crossings[0] - fired[0] if fired else None)


def simulate_day(scenario: Scenario, seed: int, start: float) -> Iterable[tuple[str, str, Any]]:
    sim = Simulator(seed, start, scenario)
    t = start
    while t < start + 86400:
        t += EVAL_S
        yield from ((topic, key, ev) for topic, key, ev in sim.advance(t) if isinstance(ev, dict))
        yield ("tick", "", t)


def run(
    scenario: Scenario,
    days: int,
    seed: int,
    offered_window_s: float = OFFERED_WINDOW_S,
    recent_window_s: float | None = RECENT_WINDOW_S,
    predictive_for_s: float = PREDICTIVE_FOR_S,
    predictive_keep_s: float = PREDICTIVE_KEEP_S,
) -> dict[str, Any]:
    zone = ZoneInfo("UTC")
    errors: list[tuple[str, dict[Estimator, float | None], float]] = []
    scores = {"predictive": Score(), "reactive": Score()}
    incidents: dict[str, list[float | None]] = {"predictive": [], "reactive": []}
    for d in range(days):
        replay = Replay(
            scenario, zone, offered_window_s, recent_window_s, predictive_for_s, predictive_keep_s
        )
        for topic, _, ev in simulate_day(scenario, seed + d, DAY0):
            if topic == "tick":
                replay.evaluate(ev)
            else:
                replay.event(topic, ev)
        errors += replay.errors
        for name, sc in scores.items():
            score(replay, name, sc)
        score_incidents(replay, scenario, DAY0, incidents)
    alerts = {n: _alert(s) | _incident_leads(incidents[n]) for n, s in scores.items()}
    return {"errors": _errors(errors), "alerts": alerts}


def _incident_leads(leads: list[float | None]) -> dict[str, Any]:
    caught = [x for x in leads if x is not None]
    return {
        "incident_breaches": len(leads),
        "incident_caught": len(caught),
        "incident_5min_ahead": sum(1 for x in caught if x >= 300),
        "incident_median_lead_s": round(statistics.median(caught), 1) if caught else None,
    }


def _errors(errors: list[tuple[str, dict[Estimator, float | None], float]]) -> dict[str, Any]:
    answered = [(e, w) for o, e, w in errors if o == "answered" and all(v is not None for v in e.values())]
    out: dict[str, Any] = {"contacts": len(answered)}
    for kind in ESTIMATORS:
        diffs = [w - (e[kind] or 0.0) for e, w in answered]
        out[kind] = {
            "mae_s": round(statistics.fmean(abs(x) for x in diffs), 2) if diffs else None,
            "bias_s": round(statistics.fmean(diffs), 2) if diffs else None,
        }
    return out


def _alert(s: Score) -> dict[str, Any]:
    return {
        "breaches": s.caught + s.missed,
        "caught": s.caught,
        "false_alarms": s.false_alarms,
        "median_lead_s": round(statistics.median(s.leads), 1) if s.leads else None,
        "lead_5min_or_more": sum(1 for x in s.leads if x >= 300),
    }


def table(result: dict[str, Any], days: int) -> str:
    e, a = result["errors"], result["alerts"]
    lines = [
        f"EWT error on {e['contacts']} answered contacts over {days} simulated days (actual - estimated):",
        "| estimator | mean absolute error (s) | bias (s) |",
        "| --- | --- | --- |",
    ]
    for kind in ESTIMATORS:
        mark = " (default)" if kind == KpiSettings.ewt_estimator else ""
        lines.append(f"| {kind}{mark} | {e[kind]['mae_s']} | {e[kind]['bias_s']} |")
    lines += [
        "",
        "| alert | breaches | caught | caught >= 5 min ahead | false alarms | median lead (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in a.items():
        lines.append(
            f"| {name} | {s['breaches']} | {s['caught']} | {s['lead_5min_or_more']} | "
            f"{s['false_alarms']} | {s['median_lead_s']} |"
        )
    lines += [
        "",
        "| alert | incidents that breached | caught | caught >= 5 min ahead | median lead (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in a.items():
        lines.append(
            f"| {name} | {s['incident_breaches']} | {s['incident_caught']} | {s['incident_5min_ahead']} | "
            f"{s['incident_median_lead_s']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ewt_backtest", description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenario", type=Path)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument(
        "--offered-window",
        type=float,
        default=OFFERED_WINDOW_S,
        help="seconds of arrivals the projection's rate is taken over (default: the worker's 5 minutes)",
    )
    ap.add_argument(
        "--recent-window",
        type=float,
        default=RECENT_WINDOW_S,
        help="also take the arrivals over these last seconds, when their rate is above the other's "
        "(default: the worker's 2 minutes; 0: off)",
    )
    ap.add_argument(
        "--for", dest="for_s", type=float, default=PREDICTIVE_FOR_S, help="the predictive rule's for"
    )
    ap.add_argument(
        "--keep", type=float, default=PREDICTIVE_KEEP_S, help="the predictive rule's keep_firing_for"
    )
    args = ap.parse_args(argv)
    if args.days < 1 or args.offered_window <= 0 or args.recent_window < 0:
        ap.error("--days must be >= 1, --offered-window > 0 and --recent-window >= 0")
    if args.for_s < 0 or args.keep < 0:
        ap.error("--for and --keep must be >= 0")
    scenario = load(args.scenario) if args.scenario else backtest_scenario()
    recent = args.recent_window or None
    result = run(scenario, args.days, args.seed, args.offered_window, recent, args.for_s, args.keep)
    print(table(result, args.days))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def backtest_scenario() -> Scenario:
    import tomllib

    text = resources.files("producers").joinpath("scenarios/backtest.toml").read_text()
    return parse(tomllib.loads(text), "backtest scenario")


if __name__ == "__main__":
    sys.exit(main())
