"""The KPI catalog: every contact-center metric ccmon exports, declared once.

Each :class:`Kpi` says what prometheus_client's ``Counter``/``Gauge``/``Histogram`` constructors
say (name, type, label names, help) and what the rest of the project needs to know about it:

- ``unit``: what a sample measures (``contacts``, ``ratio``, ``seconds``, ``score``, ``agents``);
- ``formula``: for a windowed gauge (label ``window``), the value over one window's sums
  (streams/core/kpis.py), ``None`` when there is nothing to divide by: no sample then
  (``absent_when_undefined``); ``window_sum``: for a counter, its position in the window sums, so
  the wallboard can show "in the last 15 min"; ``series_attr``: for a gauge of one value per
  queue and channel, the ``SeriesView`` attribute it exports; ``reads``: which state it reads;
- ``tiles``: its cells on the built-in wallboard (``/api/wallboard`` field, window, format, colour
  grades, position, channels), the page draws them from the payload's ``fields``;
- ``panels``: its tiles on the Grafana wallboard, ``detail``: its panel on the queue-detail
  dashboard (grafana/generate.py builds both from here);
- ``rules``: the recording rules it needs, checked against streams/resources/prometheus/rules/;
- ``doc``: its line in the metric tables of README.md and docs/kpis.md (``python -m
  streams.metrics.catalog`` writes them; a test fails when they differ).

Who reads it: streams/metrics/kpi_exposition.py (``/metrics`` families and windowed gauges, in
``KPIS`` order), streams/wallboard/queues.py (``/api/wallboard``), grafana/generate.py, the docs
tables, and tests/unit/test_catalog.py, which fails when any of them disagrees.

Adding a KPI over window sums: its positions and formula in streams/core/kpis.py (and its sums
counted in streams/core/queues.py), one ``Kpi(...)`` below with ``formula=``, then
``python -m grafana.generate`` and ``python -m streams.metrics.catalog``. A gauge of one value
per queue and channel (e.g. an estimate the store computes): a ``SeriesView`` field and
``series_attr=``. A family with more labels or buckets (a histogram, a per-state gauge) also
needs its lines in kpi_exposition.render_series. The order of ``KPIS`` is the order on /metrics.

Example (the first response time of this round, two declarations)::

    Kpi("ccmon_first_response_seconds_avg", "gauge", ("queue", "channel", "window"),
        "Mean first response time ...", "seconds", "doc line", formula=kpis.first_response,
        absent_when_undefined=True,
        tiles=(Tile("first_response_seconds_15m", "first response", 16, "secs", window="15m",
                    channels=("chat",)),),
        panels=(Panel("Last 15 minutes", 7, "First response 15m (chat)", "s", steps, ...),),
        detail=Detail(6, "First response time", "s"))

Pure: no Faust, no I/O, so the worker, the generators and the tests import it alike.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streams.core import kpis

__all__ = [
    "AGENT_KPIS",
    "KPIS",
    "Detail",
    "Grade",
    "Kpi",
    "Panel",
    "Ref",
    "Tile",
    "by_name",
    "doc_table",
    "recording_rules",
    "tiles",
    "wallboard_fields",
    "windowed",
]

MetricType = Literal["counter", "gauge", "histogram"]
#: how the wallboard page shows a value (its ``FORMATS`` in wallboard.html)
Format = Literal["num", "pct", "secs", "fixed0", "fixed1"]
QC = ("queue", "channel")
QCW = ("queue", "channel", "window")


@dataclass(frozen=True, slots=True)
class Ref:
    """A grade bound read from the series' own row: ``row[field] * times + plus`` (e.g. the
    queue's SL threshold T, or its SL target minus 10 points)."""

    field: str
    times: float = 1.0
    plus: float = 0.0


@dataclass(frozen=True, slots=True)
class Grade:
    """Colour of a wallboard cell: ok up to ``good``, warn up to ``warn``, else bad (reversed
    with ``higher``); ``warn=None``: anything not ok is warn."""

    good: float | Ref
    warn: float | Ref | None
    higher: bool = False


@dataclass(frozen=True, slots=True)
class Tile:
    """One cell of a card on the built-in wallboard. ``field`` is its key in ``/api/wallboard``'s
    series rows and its ``data-kpi`` on the page; ``window`` None reads ``attr`` of the series
    view (or of the row's extras, e.g. ``staffed``)."""

    field: str
    label: str
    slot: int  #: position on the card
    fmt: Format
    window: str | None = None
    attr: str | None = None
    grade: Grade | None = None
    big: bool = False
    channels: tuple[str, ...] | None = None  #: only on these channels' cards (None: all)


@dataclass(frozen=True, slots=True)
class Panel:
    """A tile of the Grafana wallboard, in ``row`` at ``slot``. ``expr`` defaults to the
    windowed gauge's ``sum by (queue, channel) (name{window="W"})``. ``steps``: threshold colours
    from the lowest (bound None) up."""

    row: str
    slot: int
    title: str
    unit: str  #: Grafana's unit id
    steps: tuple[tuple[float | None, str], ...]
    window: str | None = None
    expr: str | None = None
    legend: str = "{{queue}} {{channel}}"
    width: int = 8
    height: int = 7
    decimals: int | None = None


@dataclass(frozen=True, slots=True)
class Detail:
    """A panel of the queue-detail dashboard: the KPI in each window over time (a windowed
    gauge), at ``slot`` among the queue-detail panels."""

    slot: int
    title: str
    unit: str


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str
    unit: str
    doc: str
    formula: Callable[[Sequence[float]], float | None] | None = None
    absent_when_undefined: bool = False
    window_sum: int | None = None
    reads: str = ""
    #: a gauge of one value per (queue, channel): the attribute of streams.core.queues.SeriesView
    #: it exports (None there: no sample), e.g. a new per-series state KPI needs only this
    series_attr: str | None = None
    tiles: tuple[Tile, ...] = ()
    panels: tuple[Panel, ...] = ()
    detail: Detail | None = None
    rules: tuple[str, ...] = ()  #: names of the recording rules built on it (rules/ccmon.yml)
    extra_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  #: label → its values
    #: a customer KPI (SPEC §2 "The customer"): exported, and shown, only for the series whose
    #: contacts carry a customer (streams/core/queues.SeriesView.customers)
    customer: bool = False

    @property
    def windowed(self) -> bool:
        return self.formula is not None

    def value(self, window_sums: Sequence[float]) -> float | None:
        """The KPI over one window's sums (a windowed gauge's formula, a counter's count)."""
        if self.formula is not None:
            return self.formula(window_sums)
        if self.window_sum is not None:
            return window_sums[self.window_sum]
        raise ValueError(f"{self.name} has no value over a window")


GOOD_HIGH_SL = ((None, "red"), (0.7, "orange"), (0.8, "green"))
GOOD_LOW_WAIT = ((None, "green"), (20, "orange"), (60, "red"))
NEUTRAL = ((None, "blue"),)
SL = Grade(Ref("sl_target"), Ref("sl_target", plus=-0.1), higher=True)
WAIT = Grade(Ref("sl_threshold_s"), Ref("sl_threshold_s", times=3))


def _counter(short: str, help: str, doc: str, window_sum: int | None = None) -> Kpi:
    return Kpi(f"ccmon_contacts_{short}_total", "counter", QC, help, "contacts", doc, window_sum=window_sum)


#: every KPI family, in /metrics order
KPIS: tuple[Kpi, ...] = (
    _counter(
        "offered",
        "Contacts offered",
        "Contacts that entered the queue (offered or transferred in)",
        window_sum=kpis.OFFERED,
    ),
    _counter(
        "answered", "Contacts answered", "Contacts whose wait ended with `answered`", window_sum=kpis.ANSWERED
    ),
    _counter(
        "abandoned",
        "Contacts abandoned",
        "Contacts whose wait ended with `abandoned`",
        window_sum=kpis.ABANDONED,
    ),
    _counter(
        "short_abandoned",
        "Contacts short abandoned",
        "Abandoned after waiting less than S (default 5 s)",
        window_sum=kpis.SHORT,
    ),
    _counter(
        "answered_in_threshold",
        "Contacts answered in threshold",
        "Answered after waiting at most T (default 20 s)",
        window_sum=kpis.IN_THRESHOLD,
    ),
    _counter(
        "handled",
        "Contacts handled",
        "Segments whose handling completed (wrap-up, ACW timeout, transfer)",
        window_sum=kpis.HANDLED,
    ),
    _counter("transferred_out", "Contacts transferred out", "Segments that ended with `transferred`"),
    Kpi(
        "ccmon_contacts_dequeued_total",
        "counter",
        (*QC, "reason"),
        "Contacts that left the queue without an agent and without hanging up",
        "contacts",
        "Contacts whose wait ended with `dequeued`, by reason",
        window_sum=kpis.DEQUEUED,
        extra_labels={"reason": ("timeout", "empty", "key", "withdraw", "overflow", "other")},
        tiles=(Tile("dequeued_15m", "dequeued", 6, "num", window="15m"),),
        panels=(
            Panel(
                "Last 15 minutes",
                3,
                "Dequeued 15m",
                "none",
                NEUTRAL,
                expr="round(sum by (queue, channel) (increase(ccmon_contacts_dequeued_total[15m])))",
                width=6,
            ),
        ),
    ),
    Kpi(
        "ccmon_offers_missed_total",
        "counter",
        QC,
        "Offers of a waiting contact that an agent did not take",
        "offers",
        "`missed` events: an agent was offered the waiting contact and did not take it",
        window_sum=kpis.MISSED,
        tiles=(Tile("missed_15m", "missed offers", 9, "num", window="15m", grade=Grade(0, None)),),
        panels=(
            Panel(
                "Last 15 minutes",
                4,
                "Missed offers 15m",
                "none",
                ((None, "green"), (1, "orange")),
                expr="round(sum by (queue, channel) (increase(ccmon_offers_missed_total[15m])))",
                width=6,
            ),
        ),
    ),
    Kpi(
        "ccmon_wait_seconds",
        "histogram",
        (*QC, "outcome"),
        "Wait time of contacts whose wait ended",
        "seconds",
        "Wait until `answered`, `abandoned` or `dequeued` (outcome)",
        reads="totals",
        extra_labels={"outcome": ("answered", "abandoned", "dequeued")},
    ),
    Kpi(
        "ccmon_handle_seconds",
        "histogram",
        QC,
        "Handle time of completed segments",
        "seconds",
        "Handle time (talk + hold + ACW) of handled segments",
        reads="totals",
    ),
    Kpi(
        "ccmon_queue_waiting_contacts",
        "gauge",
        QC,
        "Contacts waiting now",
        "contacts",
        "Contacts offered and not yet answered, abandoned, dequeued or transferred",
        reads="waiting contacts",
        series_attr="waiting",
        tiles=(Tile("waiting", "waiting", 1, "num", attr="waiting", grade=Grade(0, None), big=True),),
        panels=(
            Panel(
                "Queues now",
                1,
                "Waiting now",
                "none",
                ((None, "green"), (1, "orange"), (10, "red")),
                expr="sum by (queue, channel) (ccmon_queue_waiting_contacts)",
            ),
        ),
    ),
    Kpi(
        "ccmon_queue_oldest_wait_seconds",
        "gauge",
        QC,
        "Wait so far of the longest-waiting contact",
        "seconds",
        "Now minus the earliest `offered.ts` among contacts waiting now (0 when none waits)",
        reads="waiting contacts and the clock",
        tiles=(Tile("oldest_wait_s", "oldest", 2, "secs", attr="oldest_wait_s", grade=WAIT, big=True),),
        panels=(
            Panel(
                "Queues now",
                2,
                "Oldest waiting",
                "s",
                GOOD_LOW_WAIT,
                expr="max by (queue, channel) (ccmon_queue_oldest_wait_seconds)",
            ),
        ),
    ),
    Kpi(
        "ccmon_agents",
        "gauge",
        ("queue", "state"),
        "Agents whose latest state is this, per queue they serve",
        "agents",
        "Agents whose latest state is `state`, in every queue they serve",
        reads="agent records of the queue",
        extra_labels={"state": ("available", "busy", "acw", "away", "offline")},
        tiles=(Tile("staffed", "staffed", 11, "num", attr="staffed"),),
        panels=(
            *(
                Panel(
                    "Agents",
                    i,
                    f"Agents {state}",
                    "none",
                    ((None, colour),),
                    expr=f'sum by (queue) (ccmon_agents{{state="{state}"}})',
                    legend="{{queue}}",
                    width=6,
                    height=6,
                )
                for i, (state, colour) in enumerate(
                    (("available", "green"), ("busy", "blue"), ("acw", "purple"), ("away", "orange")), start=1
                )
            ),
            Panel(
                "Agents",
                6,
                "Agents staffed (available + busy + ACW)",
                "none",
                NEUTRAL,
                expr='sum by (queue) (ccmon_agents{state=~"available|busy|acw"})',
                legend="{{queue}}",
                width=12,
                height=6,
            ),
        ),
    ),
    Kpi(
        "ccmon_offered_contacts",
        "gauge",
        QCW,
        "Contacts offered in the window",
        "contacts",
        "Contacts offered in the window",
        formula=lambda v: v[kpis.OFFERED],
        detail=Detail(5, "Offered in window", "none"),
    ),
    Kpi(
        "ccmon_abandon_ratio",
        "gauge",
        QCW,
        "(abandoned - short) / (answered + abandoned - short) in the window",
        "ratio",
        "Abandonment rate: (abandoned − short) / (answered + abandoned − short)",
        formula=kpis.abandon_ratio,
        absent_when_undefined=True,
        tiles=(Tile("abandon_ratio_15m", "abandoned", 5, "pct", window="15m", grade=Grade(0.05, 0.10)),),
        panels=(
            Panel(
                "Last 15 minutes",
                2,
                "Abandonment 15m",
                "percentunit",
                ((None, "green"), (0.05, "orange"), (0.10, "red")),
                window="15m",
                width=6,
                decimals=1,
            ),
        ),
        detail=Detail(2, "Abandonment rate", "percentunit"),
    ),
    Kpi(
        "ccmon_service_level_ratio",
        "gauge",
        QCW,
        "Answered within the threshold / (answered + abandoned - short + dequeued)",
        "ratio",
        "Service level: answered within T / (answered + abandoned − short + dequeued)",
        formula=kpis.service_level,
        absent_when_undefined=True,
        tiles=(
            Tile("service_level_today", "SL today", 3, "pct", window="today", grade=SL, big=True),
            Tile("service_level_15m", "SL 15m", 4, "pct", window="15m", grade=SL),
        ),
        panels=(
            Panel(
                "Queues now",
                3,
                "Service level today",
                "percentunit",
                GOOD_HIGH_SL,
                window="today",
                decimals=1,
            ),
            Panel(
                "Last 15 minutes",
                1,
                "Service level 15m",
                "percentunit",
                GOOD_HIGH_SL,
                window="15m",
                width=6,
                decimals=1,
            ),
        ),
        detail=Detail(1, "Service level", "percentunit"),
    ),
    Kpi(
        "ccmon_asa_seconds",
        "gauge",
        QCW,
        "Average speed of answer in the window",
        "seconds",
        "ASA: mean wait of the contacts answered in the window",
        formula=kpis.asa,
        absent_when_undefined=True,
        tiles=(Tile("asa_seconds_15m", "ASA", 7, "secs", window="15m", grade=WAIT),),
        panels=(Panel("Last 15 minutes", 5, "ASA 15m", "s", GOOD_LOW_WAIT, window="15m", width=12),),
        detail=Detail(3, "ASA", "s"),
    ),
    Kpi(
        "ccmon_aht_seconds",
        "gauge",
        QCW,
        "Average handle time of segments completed in the window",
        "seconds",
        "AHT: mean handle time of the segments handled in the window",
        formula=kpis.aht,
        absent_when_undefined=True,
        tiles=(Tile("aht_seconds_15m", "AHT", 8, "secs", window="15m"),),
        panels=(Panel("Last 15 minutes", 6, "AHT 15m", "s", NEUTRAL, window="15m", width=12),),
        detail=Detail(4, "AHT", "s"),
    ),
    Kpi(
        "ccmon_csat_ratio",
        "gauge",
        QCW,
        "Share of CSAT answers >= 4 in the window",
        "ratio",
        "CSAT: share of the survey answers with `csat` ≥ 4",
        formula=kpis.csat,
        absent_when_undefined=True,
        tiles=(
            Tile("csat_today", "CSAT today", 13, "pct", window="today", grade=Grade(0.8, 0.7, higher=True)),
        ),
        panels=(
            Panel(
                "Surveys today",
                1,
                "CSAT today",
                "percentunit",
                ((None, "red"), (0.7, "orange"), (0.8, "green")),
                window="today",
                width=6,
                decimals=1,
            ),
        ),
    ),
    Kpi(
        "ccmon_nps_score",
        "gauge",
        QCW,
        "Net promoter score (-100..100) in the window",
        "score",
        "NPS: % promoters (9–10) − % detractors (0–6)",
        formula=kpis.nps,
        absent_when_undefined=True,
        tiles=(
            Tile("nps_today", "NPS today", 14, "fixed0", window="today", grade=Grade(30, 0, higher=True)),
        ),
        panels=(
            Panel(
                "Surveys today",
                2,
                "NPS today",
                "none",
                ((None, "red"), (0, "orange"), (30, "green")),
                window="today",
                width=6,
                decimals=0,
            ),
        ),
    ),
    Kpi(
        "ccmon_fcr_ratio",
        "gauge",
        QCW,
        "Share of surveys saying resolved, among those answering",
        "ratio",
        "FCR: share of the surveys with `resolved = true` among those that carry it",
        formula=kpis.fcr,
        absent_when_undefined=True,
        tiles=(
            Tile("fcr_today", "FCR today", 15, "pct", window="today", grade=Grade(0.7, 0.6, higher=True)),
        ),
        panels=(
            Panel(
                "Surveys today",
                3,
                "FCR today",
                "percentunit",
                ((None, "red"), (0.6, "orange"), (0.7, "green")),
                window="today",
                width=6,
                decimals=1,
            ),
        ),
    ),
    Kpi(
        "ccmon_ces_score",
        "gauge",
        QCW,
        "Mean customer effort score (1-7, 7 = very easy) in the window",
        "score",
        "CES: mean of the `ces` answers (1–7, 7 = very easy)",
        formula=kpis.ces,
        absent_when_undefined=True,
        tiles=(Tile("ces_today", "CES today", 12, "fixed1", window="today", grade=Grade(5, 4, higher=True)),),
        panels=(
            Panel(
                "Surveys today",
                4,
                "CES today",
                "none",
                ((None, "red"), (4, "orange"), (5, "green")),
                window="today",
                width=6,
                decimals=1,
            ),
        ),
    ),
    Kpi(
        "ccmon_agents_required",
        "gauge",
        QC,
        "Agents needed for the SL target (Erlang C, last 15m)",
        "agents",
        "Erlang C: the fewest agents that meet the SL target at the last 15 min's traffic and AHT",
        reads="the 15m window",
        series_attr="agents_required",
        absent_when_undefined=True,
        tiles=(
            Tile(
                "agents_required",
                "required",
                10,
                "num",
                attr="agents_required",
                grade=Grade(Ref("staffed"), Ref("staffed")),
            ),
        ),
        panels=(
            Panel(
                "Agents",
                5,
                "Agents required (Erlang C)",
                "none",
                NEUTRAL,
                expr="sum by (queue, channel) (ccmon_agents_required)",
                width=12,
                height=6,
            ),
        ),
    ),
    Kpi(
        "ccmon_ewt_seconds",
        "gauge",
        QC,
        "Estimated wait of a contact offered now (CCMON_EWT_ESTIMATOR)",
        "seconds",
        'Estimated wait time of a contact offered now (docs/kpis.md "Prediction"); absent when nobody '
        "staffs the queue or no handle time is known",
        reads="waiting contacts, the queue's agents, the 5m and 15m windows",
        series_attr="ewt_s",
        absent_when_undefined=True,
        tiles=(Tile("ewt_seconds", "EWT", 17, "secs", attr="ewt_s", grade=WAIT),),
        panels=(
            Panel(
                "Prediction",
                1,
                "Estimated wait (EWT)",
                "s",
                GOOD_LOW_WAIT,
                expr="sum by (queue, channel) (ccmon_ewt_seconds)",
            ),
        ),
    ),
    Kpi(
        "ccmon_service_level_projected_ratio",
        "gauge",
        ("queue", "channel", "horizon"),
        "Projected service level of the current interval and of the day",
        "ratio",
        "Expected service level at the end of the current interval (`CCMON_SL_INTERVAL_MIN`) and of "
        "the day: so far, plus those waiting now and those expected, at current staffing",
        reads="waiting contacts, the queue's agents, the interval's buckets, the 5m, 15m and today windows",
        absent_when_undefined=True,
        extra_labels={"horizon": ("interval", "day")},
        tiles=(
            Tile(
                "service_level_projected",
                "SL projected",
                18,
                "pct",
                attr="sl_projected_interval",
                grade=SL,
            ),
        ),
        panels=(
            Panel(
                "Prediction",
                2,
                "Service level projected (interval)",
                "percentunit",
                GOOD_HIGH_SL,
                expr='sum by (queue, channel) (ccmon_service_level_projected_ratio{horizon="interval"})',
                decimals=1,
            ),
        ),
    ),
    Kpi(
        "ccmon_service_level_breach_seconds",
        "gauge",
        QC,
        "Expected seconds until the interval's service level is below target",
        "seconds",
        "When the interval's projection is below target: expected seconds until its service level is "
        "(0: already); absent otherwise",
        reads="as ccmon_service_level_projected_ratio",
        series_attr="breach_s",
        absent_when_undefined=True,
        # any value is bad: the cell is there only when a breach is projected
        tiles=(Tile("breach_seconds", "breach in", 19, "secs", attr="breach_s", grade=Grade(-1, -1)),),
        panels=(
            Panel(
                "Prediction",
                3,
                "Breach of the SL target expected in",
                "s",
                ((None, "red"),),
                expr="sum by (queue, channel) (ccmon_service_level_breach_seconds)",
            ),
        ),
    ),
    Kpi(
        "ccmon_ewt_error_seconds",
        "histogram",
        (*QC, "outcome"),
        "Actual wait minus the EWT at offered, per contact whose wait ended",
        "seconds",
        "EWT error: actual wait − the EWT at the contact's `offered`, graded from event times only "
        '(docs/kpis.md "EWT error"), by how the wait ended (outcome)',
        reads="the ended waits of the last hour, the 5m before each offered, waiting contacts",
        extra_labels={"outcome": ("answered", "abandoned", "dequeued")},
    ),
    Kpi(
        "ccmon_ewt_error_abs_seconds",
        "gauge",
        QCW,
        "Mean absolute EWT error of the contacts answered in the window",
        "seconds",
        "Mean |actual wait − EWT at offered| of the contacts answered in the window",
        reads="as ccmon_ewt_error_seconds",
        absent_when_undefined=True,
        extra_labels={"window": ("5m", "15m", "1h")},
        panels=(
            Panel(
                "Prediction",
                4,
                "EWT mean absolute error (1h)",
                "s",
                GOOD_LOW_WAIT,
                window="1h",
            ),
        ),
    ),
    Kpi(
        "ccmon_ewt_error_bias_seconds",
        "gauge",
        QCW,
        "Mean EWT error (actual − estimated) of the contacts answered in the window",
        "seconds",
        "Mean actual wait − EWT at offered of the contacts answered in the window: > 0, the EWT "
        "promises too little",
        reads="as ccmon_ewt_error_seconds",
        absent_when_undefined=True,
        extra_labels={"window": ("5m", "15m", "1h")},
    ),
    Kpi(
        "ccmon_first_response_seconds",
        "histogram",
        QC,
        "Time from offered to the agent's first reply, per segment",
        "seconds",
        "First response time: `responded.ts − offered.ts` of the segment's queue (chat; on voice "
        "once a voice contact had one)",
        reads="totals",
        rules=("queue_channel:ccmon_first_response_seconds:mean15m",),
    ),
    Kpi(
        "ccmon_first_response_seconds_avg",
        "gauge",
        QCW,
        "Mean first response time of the segments first responded to in the window",
        "seconds",
        "Mean first response time of the segments first responded to in the window",
        formula=kpis.first_response,
        absent_when_undefined=True,
        tiles=(
            Tile(
                "first_response_seconds_15m",
                "first response",
                16,
                "secs",
                window="15m",
                grade=WAIT,
                channels=("chat",),
            ),
        ),
        panels=(
            Panel(
                "Last 15 minutes",
                7,
                "First response 15m (chat)",
                "s",
                GOOD_LOW_WAIT,
                expr="sum by (queue, channel) "
                '(ccmon_first_response_seconds_avg{channel="chat", window="15m"})',
                width=24,
            ),
        ),
        detail=Detail(6, "First response time", "s"),
    ),
    # the customer behind the contacts (SPEC §2 "The customer"; only series whose contacts carry a
    # customer, with CCMON_CUSTOMER_KEY_FILE: docs/kpis.md, "The customer")
    Kpi(
        "ccmon_contacts_repeat_total",
        "counter",
        (*QC, "previous"),
        "Offered contacts whose customer had an earlier contact offered within R",
        "contacts",
        "Repeat contacts: the customer had a contact offered within R (24 h) before, by how that one ended",
        window_sum=kpis.REPEAT_N,
        reads="customer totals",
        extra_labels={"previous": ("handled", "abandoned", "dequeued", "other")},
        customer=True,
    ),
    Kpi(
        "ccmon_repeat_contact_ratio",
        "gauge",
        QCW,
        "Repeat contacts / offered contacts in the window",
        "ratio",
        "Repeat ratio: repeat contacts / offered contacts",
        formula=kpis.repeat,
        absent_when_undefined=True,
        tiles=(Tile("repeat_ratio_today", "repeat today", 20, "pct", window="today", grade=Grade(0.2, 0.3)),),
        panels=(
            Panel(
                "Customers",
                1,
                "Repeat contacts today",
                "percentunit",
                ((None, "green"), (0.2, "orange"), (0.3, "red")),
                window="today",
                width=6,
            ),
        ),
        detail=Detail(7, "Repeat contacts", "percentunit"),
        customer=True,
    ),
    Kpi(
        "ccmon_abandons_recovered_total",
        "counter",
        QC,
        "Abandoned or dequeued contacts whose customer was answered within W",
        "contacts",
        "Abandoned or dequeued contacts whose customer was answered (any queue or channel) within W (60 min)",
        window_sum=kpis.RECOVERED_N,
        reads="customer totals",
        customer=True,
    ),
    Kpi(
        "ccmon_abandons_lost_total",
        "counter",
        QC,
        "Abandoned or dequeued contacts whose customer was not answered within W",
        "contacts",
        "Abandoned or dequeued contacts whose customer was not answered within W, counted when W passed",
        window_sum=kpis.LOST_N,
        reads="customer totals",
        customer=True,
    ),
    Kpi(
        "ccmon_abandons_unrecovered",
        "gauge",
        QC,
        "Abandoned or dequeued contacts within W whose customer was not answered since",
        "contacts",
        "The call-back list's length: abandons within W whose customer was not answered since",
        reads="customer totals",
        series_attr="unrecovered",
        panels=(
            Panel(
                "Customers",
                2,
                "To call back",
                "none",
                ((None, "green"), (1, "orange"), (10, "red")),
                expr="sum by (queue, channel) (ccmon_abandons_unrecovered)",
                width=6,
            ),
        ),
        customer=True,
    ),
    Kpi(
        "ccmon_abandons_unrecovered_oldest_seconds",
        "gauge",
        QC,
        "Time since the oldest abandon whose customer was not answered since",
        "seconds",
        "Now minus the oldest unrecovered abandon (0 when none; refreshed with each 10 s bucket)",
        reads="customer totals and the clock",
        series_attr="unrecovered_oldest_s",
        customer=True,
    ),
    Kpi(
        "ccmon_abandon_recovery_ratio",
        "gauge",
        QCW,
        "Recovered / (recovered + lost) abandons in the window",
        "ratio",
        "Abandon recovery: recovered / (recovered + lost)",
        formula=kpis.recovery,
        absent_when_undefined=True,
        tiles=(
            Tile(
                "recovery_ratio_today",
                "recovered today",
                21,
                "pct",
                window="today",
                grade=Grade(0.8, 0.6, higher=True),
            ),
        ),
        panels=(
            Panel(
                "Customers",
                3,
                "Abandons recovered today",
                "percentunit",
                ((None, "red"), (0.6, "orange"), (0.8, "green")),
                window="today",
                width=6,
            ),
        ),
        detail=Detail(8, "Abandon recovery", "percentunit"),
        customer=True,
    ),
    Kpi(
        "ccmon_contacts_fcr_decided_total",
        "counter",
        QC,
        "Handled contacts decided for operational FCR (R after their offer)",
        "contacts",
        "Handled contacts decided for operational FCR, when R has passed since they were offered",
        window_sum=kpis.OFCR_N,
        reads="customer totals",
        customer=True,
    ),
    Kpi(
        "ccmon_contacts_fcr_resolved_total",
        "counter",
        QC,
        "Handled contacts whose customer had no new contact within R",
        "contacts",
        "Of those, the contacts whose customer had no new contact offered within R",
        window_sum=kpis.OFCR_YES,
        reads="customer totals",
        customer=True,
    ),
    Kpi(
        "ccmon_operational_fcr_ratio",
        "gauge",
        QCW,
        "Operational FCR: resolved / decided in the window",
        "ratio",
        "Operational FCR: handled contacts with no new contact within R / those decided",
        formula=kpis.operational_fcr,
        absent_when_undefined=True,
        tiles=(
            Tile(
                "operational_fcr_today",
                "FCR (R) today",
                22,
                "pct",
                window="today",
                grade=Grade(0.7, 0.6, higher=True),
            ),
        ),
        panels=(
            Panel(
                "Customers",
                4,
                "Operational FCR today",
                "percentunit",
                ((None, "red"), (0.6, "orange"), (0.7, "green")),
                window="today",
                width=6,
            ),
        ),
        customer=True,
    ),
    Kpi(
        "ccmon_resolution_seconds",
        "histogram",
        QC,
        "Time from a case's first offered to its first resolved",
        "seconds",
        "Resolution time: first `offered` of the case (or contact) to `resolved`, for the resolving queue",
        reads="customer totals",
        rules=("queue_channel:ccmon_resolution_seconds:mean15m",),
        customer=True,
    ),
    Kpi(
        "ccmon_resolution_seconds_avg",
        "gauge",
        QCW,
        "Mean resolution time of the cases resolved in the window",
        "seconds",
        "Mean resolution time of the cases resolved in the window",
        formula=kpis.resolution,
        absent_when_undefined=True,
        tiles=(Tile("resolution_seconds_today", "resolution", 23, "secs", window="today"),),
        customer=True,
    ),
    Kpi(
        "ccmon_contacts_per_case",
        "histogram",
        QC,
        "Contacts of a case when it was resolved",
        "contacts",
        "Contacts per case: the case's contacts when it was resolved",
        reads="customer totals",
        customer=True,
    ),
    Kpi(
        "ccmon_customers_at_risk",
        "gauge",
        ("queue",),
        "Customers at risk, counted for the queue of their latest contact",
        "customers",
        "Customers who within 7 days had a lost abandon, two repeat contacts, or NPS ≤ 6 / CSAT ≤ 2",
        reads="at-risk records",
        tiles=(
            Tile("customers_at_risk", "at risk", 24, "num", attr="customers_at_risk", grade=Grade(0, None)),
        ),
        customer=True,
    ),
)

#: the per-agent families (SPEC §4; only with CCMON_AGENT_METRICS), in /metrics order, read from
#: the agent records (streams/core/agentview.py)
AGENT_KPIS: tuple[Kpi, ...] = (
    Kpi(
        "ccmon_agent_state",
        "gauge",
        ("agent", "state"),
        "1 for the agent's current state, 0 for the others",
        "state",
        "1 for the agent's latest state, 0 for the four others",
        reads="agent records",
    ),
    Kpi(
        "ccmon_agent_state_seconds_total",
        "counter",
        ("agent", "state"),
        "Time the agent spent in each state (the current one until now)",
        "seconds",
        "Time the agent spent in each state, the current one until now",
        reads="agent records and the clock",
    ),
    Kpi(
        "ccmon_agent_handled_total",
        "counter",
        ("agent",),
        "Segments the agent completed (wrap-up, ACW timeout or transfer)",
        "contacts",
        "Segments the agent completed (wrap-up, ACW timeout or transfer)",
        reads="agent records",
    ),
    Kpi(
        "ccmon_agent_handle_seconds_total",
        "counter",
        ("agent",),
        "Handle time of the segments the agent completed",
        "seconds",
        "Handle time of the segments the agent completed",
        reads="agent records",
    ),
    Kpi(
        "ccmon_agent_offers_missed_total",
        "counter",
        ("agent",),
        "Offers of a waiting contact the agent did not take",
        "offers",
        "Offers of a waiting contact the agent did not take",
        reads="agent records",
    ),
)

_BY_NAME = {k.name: k for k in (*KPIS, *AGENT_KPIS)}


def by_name(name: str) -> Kpi:
    return _BY_NAME[name]


def windowed() -> list[Kpi]:
    """The windowed gauges, in /metrics order."""
    return [k for k in KPIS if k.windowed]


def tiles() -> list[tuple[Kpi, Tile]]:
    """The built-in wallboard's cells, in their order on a card."""
    return sorted(((k, t) for k in KPIS for t in k.tiles), key=lambda kt: kt[1].slot)


def _bound(b: float | Ref | None) -> object:
    if isinstance(b, Ref):
        return {"field": b.field, "times": b.times, "plus": b.plus}
    return b


def wallboard_fields() -> list[dict[str, object]]:
    """What the page needs to draw each cell (``/api/wallboard``'s ``fields``)."""
    out: list[dict[str, object]] = []
    for kpi, t in tiles():
        g = t.grade
        out.append(
            {
                "id": t.field,
                "label": t.label,
                "format": t.fmt,
                "big": t.big,
                "channels": list(t.channels) if t.channels else None,
                "grade": None
                if g is None
                else {"good": _bound(g.good), "warn": _bound(g.warn), "higher": g.higher},
                "metric": kpi.name,
                "window": t.window,
            }
        )
    return out


def recording_rules() -> dict[str, str]:
    """The recording rules that follow mechanically from the catalog (rule name → expr): for a
    histogram, ``...:mean15m`` = increase of its sum / increase of its count over 15 min, absent
    when nothing was observed. streams/resources/prometheus/rules/ccmon.yml holds each verbatim
    (tests/unit/test_catalog.py)."""
    out: dict[str, str] = {}
    for k in KPIS:
        for rule in k.rules:
            if k.type == "histogram" and rule == f"queue_channel:{k.name}:mean15m":
                out[rule] = (
                    f"sum by (queue, channel) (increase({k.name}_sum[15m]))\n"
                    f"/ (sum by (queue, channel) (increase({k.name}_count[15m])) > 0)\n"
                )
            else:
                raise ValueError(f"no mechanical rule {rule!r} for {k.name}")
    return out


def _labels(k: Kpi) -> str:
    return ", ".join(k.labels)


def doc_table() -> str:
    """The metric table of README.md and docs/kpis.md (between the ``metrics table`` markers)."""
    rows = ["| metric | type | labels | unit | what it counts |", "| --- | --- | --- | --- | --- |"]
    for k in (*KPIS, *AGENT_KPIS):
        doc = k.doc + (" (absent when undefined)" if k.absent_when_undefined else "")
        rows.append(f"| `{k.name}` | {k.type} | {_labels(k)} | {k.unit} | {doc} |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- metrics table: python -m streams.metrics.catalog -->\n", "<!-- end of metrics table -->\n"
DOCS = ("README.md", "docs/kpis.md")


def with_table(text: str) -> str:
    """``text`` with the table between its markers replaced by the current one."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("no metrics table markers")
    return pattern.sub(lambda _: BEGIN + doc_table() + END, text)


ROOT = Path(__file__).resolve().parents[2]


def main(root: Path = ROOT) -> int:
    for name in DOCS:
        path = root / name
        path.write_text(with_table(path.read_text()))
        print(f"wrote the metrics table of {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
