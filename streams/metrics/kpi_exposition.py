"""The KPI half of /metrics: Prometheus text built from the queue store at scrape time.

KPI series carry no state of their own: a restarted worker, or one that took over partitions,
exports exactly what its state holds, and a queue it no longer owns simply stops appearing (no
stale series). With 1,000 queues × 2 channels that is ~190,000 samples, too many to rebuild
through prometheus-client's metric families on every scrape, so each series' lines are kept as
text until the series changes (its version in the store), a window slides (a new event-time
bucket begins) or the day turns. Only "oldest waiting", which moves with the clock, is written
on every scrape. The text is the same as prometheus-client's exposition format 0.0.4.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from streams.core import kpis
from streams.core.intake import partition_for_queue
from streams.core.queues import COUNTERS, HANDLE_BUCKETS, TODAY, WAIT_BUCKETS, WINDOWS, QueueStore, SeriesView

WINDOW_NAMES = (*WINDOWS, TODAY)

#: windowed gauge → (help, formula over the window's sums)
GAUGES: dict[str, tuple[str, Callable[[list[float]], float | None]]] = {
    "ccmon_offered_contacts": ("Contacts offered in the window", lambda v: v[kpis.OFFERED]),
    "ccmon_abandon_ratio": (
        "(abandoned - short) / (answered + abandoned - short) in the window",
        kpis.abandon_ratio,
    ),
    "ccmon_service_level_ratio": (
        "Answered within the threshold / (answered + abandoned - short + dequeued)",
        kpis.service_level,
    ),
    "ccmon_asa_seconds": ("Average speed of answer in the window", kpis.asa),
    "ccmon_aht_seconds": ("Average handle time of segments completed in the window", kpis.aht),
    "ccmon_csat_ratio": ("Share of CSAT answers >= 4 in the window", kpis.csat),
    "ccmon_nps_score": ("Net promoter score (-100..100) in the window", kpis.nps),
    "ccmon_fcr_ratio": ("Share of surveys saying resolved, among those answering", kpis.fcr),
    "ccmon_ces_score": ("Mean customer effort score (1-7, 7 = very easy) in the window", kpis.ces),
}

# families in output order: (name as exposed, type, help); per-series text is cached for all but
# OLDEST (clock-dependent) and AGENTS (per queue, not per series)
FAMILIES: list[tuple[str, str, str]] = [
    *((f"ccmon_contacts_{c}_total", "counter", f"Contacts {c.replace('_', ' ')}") for c in COUNTERS),
    (
        "ccmon_contacts_dequeued_total",
        "counter",
        "Contacts that left the queue without an agent and without hanging up",
    ),
    ("ccmon_offers_missed_total", "counter", "Offers of a waiting contact that an agent did not take"),
    ("ccmon_wait_seconds", "histogram", "Wait time of contacts whose wait ended"),
    ("ccmon_handle_seconds", "histogram", "Handle time of completed segments"),
    ("ccmon_queue_waiting_contacts", "gauge", "Contacts waiting now"),
    ("ccmon_queue_oldest_wait_seconds", "gauge", "Wait so far of the longest-waiting contact"),
    ("ccmon_agents", "gauge", "Agents whose latest state is this, per queue they serve"),
    *((name, "gauge", doc) for name, (doc, _) in GAUGES.items()),
    ("ccmon_agents_required", "gauge", "Agents needed for the SL target (Erlang C, last 15m)"),
]
DEQUEUED, MISSED, WAIT, HANDLE, WAITING, OLDEST, AGENTS = range(len(COUNTERS), len(COUNTERS) + 7)
FIRST_GAUGE = AGENTS + 1
REQUIRED = len(FAMILIES) - 1
HEADERS = [f"# HELP {name} {doc}\n# TYPE {name} {kind}\n" for name, kind, doc in FAMILIES]
WAIT_LE = [floatToGoString(b) for b in (*WAIT_BUCKETS, math.inf)]
HANDLE_LE = [floatToGoString(b) for b in (*HANDLE_BUCKETS, math.inf)]


#: the facts partitions whose queues a worker exports now (``None``: every queue it holds)
Owned = Callable[[], "Collection[int] | None"]


def owner_filter(owned: Collection[int] | None, partitions: int) -> Callable[[str], bool]:
    """Whether a queue is this worker's to show: its facts partition is currently assigned here.
    A worker's state may still hold queues of partitions it has just lost; they are not shown."""
    if owned is None:
        return lambda queue: True
    return lambda queue: partition_for_queue(queue, partitions) in owned


def escape(value: str) -> str:
    """A label value as the text format wants it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _histogram(name: str, labels: str, le: list[str], raw: list[float]) -> str:
    """Per-bucket counts + sum → cumulative ``_bucket`` lines, ``_count`` and ``_sum``."""
    lines, acc = [], 0.0
    for bound, n in zip(le, raw[:-1], strict=False):
        acc += n
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {floatToGoString(acc)}\n')
    lines.append(
        f"{name}_count{{{labels}}} {floatToGoString(acc)}\n"
        f"{name}_sum{{{labels}}} {floatToGoString(raw[-1])}\n"
    )
    return "".join(lines)


@dataclass(slots=True)
class _Series:
    stamp: tuple[int, int, str]
    parts: list[str]
    labels: str
    oldest_ts: float | None  #: offered time of the longest-waiting contact


def series_labels(queue: str, channel: str) -> str:
    return f'queue="{escape(queue)}",channel="{escape(channel)}"'


def render_series(view: SeriesView, ql: str) -> list[str]:
    """Every cached family's lines for one (queue, channel), whose labels are ``ql``."""
    parts = [""] * len(FAMILIES)
    for i, name in enumerate(COUNTERS):
        parts[i] = f"{FAMILIES[i][0]}{{{ql}}} {floatToGoString(view.counters[name])}\n"
    parts[DEQUEUED] = "".join(
        f'ccmon_contacts_dequeued_total{{{ql},reason="{reason}"}} {floatToGoString(n)}\n'
        for reason, n in view.dequeued.items()
    )
    parts[MISSED] = f"ccmon_offers_missed_total{{{ql}}} {floatToGoString(view.missed)}\n"
    parts[WAIT] = "".join(
        _histogram("ccmon_wait_seconds", f'{ql},outcome="{outcome}"', WAIT_LE, raw)
        for outcome, raw in view.wait_hist.items()
    )
    parts[HANDLE] = _histogram("ccmon_handle_seconds", ql, HANDLE_LE, view.handle_hist)
    parts[WAITING] = f"ccmon_queue_waiting_contacts{{{ql}}} {floatToGoString(view.waiting)}\n"
    for g, (name, (_, formula)) in enumerate(GAUGES.items(), start=FIRST_GAUGE):
        lines = []
        for window in WINDOW_NAMES:
            value = formula(view.windows[window])
            if value is not None:
                lines.append(f'{name}{{{ql},window="{window}"}} {floatToGoString(value)}\n')
        parts[g] = "".join(lines)
    if view.agents_required is not None:
        parts[REQUIRED] = f"ccmon_agents_required{{{ql}}} {floatToGoString(view.agents_required)}\n"
    return parts


class KpiExposition:
    """Renders the KPI families; ``render`` is called by the /metrics page on every scrape."""

    def __init__(
        self,
        store: Callable[[], QueueStore],
        clock: Callable[[], float] = time.time,
        owned: Owned = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._owned = owned
        self._owner: QueueStore | None = None
        self._series: dict[tuple[str, str], _Series] = {}
        self._agents: dict[str, tuple[int, str]] = {}

    def render(self) -> str:
        store, now = self._store(), self._clock()
        if store is not self._owner:  # rebuilt after a rebalance: nothing cached is valid
            self._owner, self._series, self._agents = store, {}, {}
        current = int(now // store.bucket_s) * store.bucket_s
        today = store.local_day(now)
        mine = owner_filter(self._owned(), store.settings.partitions)
        live: list[_Series] = []
        cache: dict[tuple[str, str], _Series] = {}
        for key in store.series():
            if not mine(key[0]):
                continue
            stamp = (store.versions[key], current, today)
            entry = self._series.get(key)
            if entry is None or entry.stamp != stamp:
                view = store.view(key[0], key[1], now)
                oldest_ts = now - view.oldest_wait_s if view.waiting else None
                labels = entry.labels if entry is not None else series_labels(*key)
                entry = _Series(stamp, render_series(view, labels), labels, oldest_ts)
            cache[key] = entry
            live.append(entry)
        self._series = cache
        out: list[str] = []
        for f, header in enumerate(HEADERS):
            out.append(header)
            if f == OLDEST:
                out.extend(
                    f"ccmon_queue_oldest_wait_seconds{{{e.labels}}} "
                    f"{floatToGoString(max(0.0, now - e.oldest_ts) if e.oldest_ts is not None else 0.0)}\n"
                    for e in live
                )
            elif f == AGENTS:
                out.extend(self._agent_lines(store, mine))
            else:
                out.extend(e.parts[f] for e in live)
        return "".join(out)

    def _agent_lines(self, store: QueueStore, mine: Callable[[str], bool]) -> list[str]:
        cache: dict[str, tuple[int, str]] = {}
        lines = []
        for queue in sorted(store.index.agent_queues):
            if not mine(queue):
                continue
            version = store.agent_versions[queue]
            entry = self._agents.get(queue)
            if entry is None or entry[0] != version:
                counts = store.agent_counts(queue)
                q = escape(queue)
                entry = (
                    version,
                    "".join(
                        f'ccmon_agents{{queue="{q}",state="{state}"}} {floatToGoString(n)}\n'
                        for state, n in counts.items()
                    ),
                )
            cache[queue] = entry
            lines.append(entry[1])
        self._agents = cache
        return lines
