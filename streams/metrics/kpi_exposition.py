"""The one writer of /metrics (``KpiExposition.page``): the KPI families of the catalog
(streams/metrics/catalog.py) built from the queue store at scrape time, the per-agent families,
and the process metrics of the worker's prometheus_client registry, in one text.

KPI series carry no state of their own: a restarted worker, or one that took over partitions,
exports exactly what its state holds, and a queue it no longer owns simply stops appearing (no
stale series). With 1,000 queues × 2 channels that is ~190,000 samples, too many to rebuild
through prometheus-client's metric families on every scrape, so each series' lines are kept as
text until the series changes (its version in the store), a window slides (a new event-time
bucket begins) or the day turns. Only "oldest waiting", which moves with the clock, is written
on every scrape. The text is the same as prometheus-client's exposition format 0.0.4; the
registry's few families are written by ``registry_text`` here, line for line what
``generate_latest`` writes (tests/unit/test_exposition.py), so no second writer is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import cast

from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from streams.core.agentview import AgentStore
from streams.core.events import AGENT_STATES
from streams.core.layout import CASE_CONTACT_BUCKETS, RESOLUTION_BUCKETS
from streams.core.queues import (
    COUNTERS,
    EWT_ERROR_BUCKETS,
    FIRST_RESPONSE_BUCKETS,
    GRADED,
    HANDLE_BUCKETS,
    PREDICTED,
    TODAY,
    VIEW_PARTS,
    WAIT_BUCKETS,
    WINDOWED,
    WINDOWS,
    QueueStore,
    SeriesView,
)
from streams.metrics import catalog
from streams.owned import owner_filter

WINDOW_NAMES = (*WINDOWS, TODAY)

# families in output order, as the catalog declares them (name, type, help); per-series text is
# cached for all but OLDEST (clock-dependent) and AGENTS (per queue, not per series)
FAMILIES: list[tuple[str, str, str]] = [(k.name, k.type, k.help) for k in catalog.KPIS]
_AT = {k.name: i for i, k in enumerate(catalog.KPIS)}
COUNTER_AT = [_AT[f"ccmon_contacts_{c}_total"] for c in COUNTERS]
DEQUEUED, MISSED = _AT["ccmon_contacts_dequeued_total"], _AT["ccmon_offers_missed_total"]
WAIT, HANDLE = _AT["ccmon_wait_seconds"], _AT["ccmon_handle_seconds"]
OLDEST, AGENTS = _AT["ccmon_queue_oldest_wait_seconds"], _AT["ccmon_agents"]
FIRST_RESPONSE = _AT["ccmon_first_response_seconds"]
PROJECTED = _AT["ccmon_service_level_projected_ratio"]
EWT_ERROR = _AT["ccmon_ewt_error_seconds"]
EWT_ABS, EWT_BIAS = _AT["ccmon_ewt_error_abs_seconds"], _AT["ccmon_ewt_error_bias_seconds"]
REPEAT, RECOVERED, LOST = (
    _AT["ccmon_contacts_repeat_total"],
    _AT["ccmon_abandons_recovered_total"],
    _AT["ccmon_abandons_lost_total"],
)
FCR_DECIDED, FCR_RESOLVED = _AT["ccmon_contacts_fcr_decided_total"], _AT["ccmon_contacts_fcr_resolved_total"]
RESOLUTION, CASE_CONTACTS = _AT["ccmon_resolution_seconds"], _AT["ccmon_contacts_per_case"]
AT_RISK = _AT["ccmon_customers_at_risk"]
#: windowed gauge → (its family's position, name, formula over the window's sums)
GAUGES = [(_AT[k.name], k.name, k.formula) for k in catalog.KPIS if k.formula is not None]
#: families only series with customers export (catalog: ``customer``)
CUSTOMER_FAMILIES = frozenset(_AT[k.name] for k in catalog.KPIS if k.customer)
#: gauge of one value per series → (its family's position, name, the SeriesView attribute it reads)
VIEW_GAUGES = [(_AT[k.name], k.name, k.series_attr) for k in catalog.KPIS if k.series_attr is not None]
HEADERS = [f"# HELP {name} {doc}\n# TYPE {name} {kind}\n" for name, kind, doc in FAMILIES]


def _view_parts() -> dict[str, frozenset[str]]:
    """Family name → the parts of a series' view (``QueueStore.view``) its lines read beyond the
    records. tests/unit/test_exposition.py renders every family alone and compares it with the
    whole page, so a family missing here fails there."""
    windowed, predicted = frozenset((WINDOWED,)), frozenset((WINDOWED, PREDICTED))
    by_attr = {"agents_required": windowed, "ewt_s": predicted, "breach_s": predicted}
    out = {name: frozenset[str]() for name, _, _ in FAMILIES}
    for _, name, _ in GAUGES:
        out[name] = windowed
    for _, name, attr in VIEW_GAUGES:
        out[name] = by_attr.get(attr, out[name])
    out[FAMILIES[PROJECTED][0]] = predicted
    for f in (EWT_ERROR, EWT_ABS, EWT_BIAS):
        out[FAMILIES[f][0]] = frozenset((GRADED,))
    return out


VIEW_PARTS_OF = _view_parts()
WAIT_LE = [floatToGoString(b) for b in (*WAIT_BUCKETS, math.inf)]
HANDLE_LE = [floatToGoString(b) for b in (*HANDLE_BUCKETS, math.inf)]
FIRST_RESPONSE_LE = [floatToGoString(b) for b in (*FIRST_RESPONSE_BUCKETS, math.inf)]
EWT_ERROR_LE = [floatToGoString(b) for b in (*EWT_ERROR_BUCKETS, math.inf)]
RESOLUTION_LE = [floatToGoString(b) for b in (*RESOLUTION_BUCKETS, math.inf)]
CASE_CONTACTS_LE = [floatToGoString(b) for b in (*CASE_CONTACT_BUCKETS, math.inf)]


#: the facts partitions whose queues a worker exports now (``None``: every queue it holds)
Owned = Callable[[], "Collection[int] | None"]


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
    for i, name in zip(COUNTER_AT, COUNTERS, strict=True):
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
    for g, name, formula in GAUGES:
        if g in CUSTOMER_FAMILIES and not view.customers:
            continue
        lines = []
        for window in WINDOW_NAMES:
            value = formula(view.windows[window])
            if value is not None:
                lines.append(f'{name}{{{ql},window="{window}"}} {floatToGoString(value)}\n')
        parts[g] = "".join(lines)
    fr = view.first_response_hist
    # a chat series has it from its first contact on (rate() sees the first one); a voice series
    # once one of its contacts had a first response: no 17 zero lines per voice series
    if view.channel == "chat" or any(fr[:-1]):
        parts[FIRST_RESPONSE] = _histogram("ccmon_first_response_seconds", ql, FIRST_RESPONSE_LE, fr)
    parts[PROJECTED] = "".join(
        f'ccmon_service_level_projected_ratio{{{ql},horizon="{horizon}"}} {floatToGoString(value)}\n'
        for horizon, value in view.sl_projected.items()
    )
    # an outcome from its first graded contact on: no 16 zero lines per outcome never graded
    parts[EWT_ERROR] = "".join(
        _histogram("ccmon_ewt_error_seconds", f'{ql},outcome="{outcome}"', EWT_ERROR_LE, raw)
        for outcome, raw in view.ewt_error_hist.items()
        if any(raw[:-1])
    )
    parts[EWT_ABS] = "".join(
        f'ccmon_ewt_error_abs_seconds{{{ql},window="{w}"}} {floatToGoString(a / n)}\n'
        for w, (n, a, _) in view.ewt_error.items()
    )
    parts[EWT_BIAS] = "".join(
        f'ccmon_ewt_error_bias_seconds{{{ql},window="{w}"}} {floatToGoString(b / n)}\n'
        for w, (n, _, b) in view.ewt_error.items()
    )
    if view.customers:  # only series whose contacts carry a customer: no 40 zero lines elsewhere
        fmt = floatToGoString
        parts[REPEAT] = "".join(
            f'ccmon_contacts_repeat_total{{{ql},previous="{prev}"}} {fmt(n)}\n'
            for prev, n in view.repeat.items()
        )
        parts[RECOVERED] = f"ccmon_abandons_recovered_total{{{ql}}} {fmt(view.recovered)}\n"
        parts[LOST] = f"ccmon_abandons_lost_total{{{ql}}} {fmt(view.lost)}\n"
        parts[FCR_DECIDED] = f"ccmon_contacts_fcr_decided_total{{{ql}}} {fmt(view.fcr_decided)}\n"
        parts[FCR_RESOLVED] = f"ccmon_contacts_fcr_resolved_total{{{ql}}} {fmt(view.fcr_resolved)}\n"
        parts[RESOLUTION] = _histogram("ccmon_resolution_seconds", ql, RESOLUTION_LE, view.resolution_hist)
        parts[CASE_CONTACTS] = _histogram(
            "ccmon_contacts_per_case", ql, CASE_CONTACTS_LE, view.case_contacts_hist
        )
    for g, name, attr in VIEW_GAUGES:
        value = getattr(view, attr)
        if value is not None:  # absent, not 0, when undefined
            parts[g] = f"{name}{{{ql}}} {floatToGoString(value)}\n"
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

    def render(self, names: frozenset[str] | None = None) -> str:
        """The KPI families; with ``names``, only those (``/metrics?name[]=``)."""
        store, now = self._store(), self._clock()
        if store is not self._owner:  # rebuilt after a rebalance: nothing cached is valid
            self._owner, self._series, self._agents = store, {}, {}
        current = int(now // store.bucket_s) * store.bucket_s
        today = store.local_day(now)
        mine = owner_filter(self._owned(), store.settings.partitions)
        # a few families asked for: a series that changed is viewed with only what they read, and
        # that text is used once, not cached (its other families are not what the series holds)
        need = VIEW_PARTS if names is None else frozenset().union(*(VIEW_PARTS_OF.get(n, ()) for n in names))
        live: list[_Series] = []
        cache: dict[tuple[str, str], _Series] = {}
        for key in store.series():
            if not mine(key[0]):
                continue
            stamp = (store.versions[key], current, today)
            entry = self._series.get(key)
            if entry is None or entry.stamp != stamp:
                view = store.view(key[0], key[1], now, need)
                oldest_ts = now - view.oldest_wait_s if view.waiting else None
                labels = entry.labels if entry is not None else series_labels(*key)
                fresh = _Series(stamp, render_series(view, labels), labels, oldest_ts)
                if need != VIEW_PARTS:
                    live.append(fresh)
                    if entry is not None:
                        cache[key] = entry  # stale: rebuilt by the next whole render
                    continue
                entry = fresh
            cache[key] = entry
            live.append(entry)
        self._series = cache
        out: list[str] = []
        for f, header in enumerate(HEADERS):
            if names is not None and FAMILIES[f][0] not in names:
                continue
            out.append(header)
            if f == OLDEST:
                out.extend(
                    f"ccmon_queue_oldest_wait_seconds{{{e.labels}}} "
                    f"{floatToGoString(max(0.0, now - e.oldest_ts) if e.oldest_ts is not None else 0.0)}\n"
                    for e in live
                )
            elif f == AGENTS:
                out.extend(self._agent_lines(store, mine))
            elif f == AT_RISK:
                out.extend(
                    f'ccmon_customers_at_risk{{queue="{escape(q)}"}} {store.at_risk(q)}\n'
                    for q in sorted(store.index.risk_queues)
                    if mine(q)
                )
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

    def page(
        self,
        registry: CollectorRegistry,
        agents: tuple[AgentStore, Callable[[str], bool] | None] | None = None,
        names: Iterable[str] = (),
    ) -> bytes:
        """All of /metrics: the KPI families, the registry's process metrics, and with ``agents``
        (the agent store and the filter of the agents this worker owns) the per-agent families.
        With ``names`` (``/metrics?name[]=a&name[]=b``, as prometheus_client's exporters take
        them), only the families of those names: a poller that needs one number (a probe, the
        latency benchmark's 50-ms scraper) then neither gets nor parses the rest."""
        only = frozenset(names) or None
        if only is not None:
            registry = cast(CollectorRegistry, registry.restricted_registry(only))
        text = self.render(only) + registry_text(registry)
        if agents is not None and (only is None or only & AGENT_NAMES):
            text += render_agents(agents[0], self._clock(), agents[1], only)
        return text.encode()


AGENT_HEADERS = [f"# HELP {k.name} {k.help}\n# TYPE {k.name} {k.type}\n" for k in catalog.AGENT_KPIS]
AGENT_NAMES = frozenset(k.name for k in catalog.AGENT_KPIS)


def render_agents(
    store: AgentStore,
    now: float,
    owned: Callable[[str], bool] | None = None,
    names: frozenset[str] | None = None,
) -> str:
    """The per-agent families (SPEC §4) of the agents this worker owns: 13 series per agent;
    with ``names``, only those families. Built on each scrape (no cache: the state seconds move
    with the clock)."""
    rows = store.rows(now, owned)
    parts: list[list[str]] = [[header] for header in AGENT_HEADERS]
    fmt = floatToGoString
    for r in rows:
        a = f'agent="{escape(r.agent)}"'
        for state in AGENT_STATES:
            parts[0].append(f'ccmon_agent_state{{{a},state="{state}"}} {1 if r.state == state else 0}\n')
            parts[1].append(
                f'ccmon_agent_state_seconds_total{{{a},state="{state}"}} {fmt(r.state_s_total[state])}\n'
            )
        parts[2].append(f"ccmon_agent_handled_total{{{a}}} {r.handled_total}\n")
        parts[3].append(f"ccmon_agent_handle_seconds_total{{{a}}} {fmt(r.handle_s_total)}\n")
        parts[4].append(f"ccmon_agent_offers_missed_total{{{a}}} {r.missed_total}\n")
    return "".join(
        "".join(p) for k, p in zip(catalog.AGENT_KPIS, parts, strict=True) if names is None or k.name in names
    )


#: OpenMetrics' extra samples, which the 0.0.4 text format writes as a gauge family of their own
_EXTRA_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary"}


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def registry_text(registry: CollectorRegistry) -> str:
    """The registry's families in the text format 0.0.4, as prometheus_client's ``generate_latest``
    writes them (counters named with ``_total``, ``_created`` samples as gauges after their
    family, label names sorted), for the process metrics: a few dozen lines."""
    out: list[str] = []
    for metric in registry.collect():
        name, kind = metric.name, metric.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        elif kind == "stateset":
            kind = "gauge"
        elif kind == "gaugehistogram":
            kind = "histogram"
        elif kind not in _TYPES:
            kind = "untyped"
        doc = _help(metric.documentation)
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        extra: dict[str, list[str]] = {}
        for s in metric.samples:
            labels = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(s.labels.items()))
            stamp = "" if s.timestamp is None else f" {int(float(s.timestamp) * 1000):d}"
            line = f"{s.name}{{{labels}}}" if labels else s.name
            line = f"{line} {floatToGoString(s.value)}{stamp}\n"
            suffix = next((x for x in _EXTRA_SUFFIXES if s.name == metric.name + x), None)
            if suffix is None:
                out.append(line)
            else:
                extra.setdefault(suffix, []).append(line)
        for suffix, lines in sorted(extra.items()):
            out.append(f"# HELP {metric.name}{suffix} {doc}\n# TYPE {metric.name}{suffix} gauge\n")
            out.extend(lines)
    return "".join(out)
