"""Prometheus exposition: KPI series built from stream state at scrape time, plus process metrics.

KPI series come from a custom collector reading the queue store, so they carry no state of
their own: a restarted worker, or one that took over partitions, exports exactly what its
state holds, and a queue it no longer owns simply stops appearing (no stale series).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streams.core import kpis
from streams.core.intake import ACCEPTED, DUPLICATE, LATE, REJECTED
from streams.core.queues import HANDLE_BUCKETS, TODAY, WAIT_BUCKETS, WINDOWS, QueueStore

WINDOW_NAMES = (*WINDOWS, TODAY)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)

GAUGES: dict[str, tuple[str, Callable[[list[float]], float | None]]] = {
    "ccmon_offered_contacts": ("Contacts offered in the window", lambda v: v[kpis.OFFERED]),
    "ccmon_abandon_ratio": ("(abandoned - short) / (answered + abandoned - short) in the window", kpis.abandon_ratio),
    "ccmon_service_level_ratio": ("Answered within the threshold / (answered + abandoned - short)", kpis.service_level),
    "ccmon_asa_seconds": ("Average speed of answer in the window", kpis.asa),
    "ccmon_aht_seconds": ("Average handle time of segments completed in the window", kpis.aht),
    "ccmon_csat_ratio": ("Share of CSAT answers >= 4 in the window", kpis.csat),
    "ccmon_nps_score": ("Net promoter score (-100..100) in the window", kpis.nps),
    "ccmon_fcr_ratio": ("Share of surveys saying resolved, among those answering", kpis.fcr),
}


def _histogram_buckets(bounds: tuple[float, ...], raw: list[float]) -> tuple[list[tuple[str, float]], float]:
    """Per-bucket counts + sum → cumulative Prometheus buckets and the sum."""
    out, acc = [], 0.0
    for bound, n in zip((*bounds, float("inf")), raw[:-1]):
        acc += n
        out.append((floatToGoString(bound), acc))
    return out, raw[-1]


class StateCollector(Collector):
    """Reads every KPI series off the queue store when Prometheus scrapes."""

    def __init__(self, store: Callable[[], QueueStore], clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def describe(self) -> Iterable:  # no samples at registration time
        return []

    def collect(self) -> Iterator:
        store, now = self._store(), self._clock()
        labels = ["queue", "channel"]
        counters = {name: CounterMetricFamily(f"ccmon_contacts_{name}", f"Contacts {name.replace('_', ' ')}", labels=labels)
                    for name in ("offered", "answered", "abandoned", "short_abandoned", "answered_in_threshold",
                                 "handled", "transferred_out")}
        wait = HistogramMetricFamily("ccmon_wait_seconds", "Wait time of contacts whose wait ended",
                                     labels=["queue", "channel", "outcome"])
        handle = HistogramMetricFamily("ccmon_handle_seconds", "Handle time of completed segments", labels=labels)
        waiting = GaugeMetricFamily("ccmon_queue_waiting_contacts", "Contacts waiting now", labels=labels)
        oldest = GaugeMetricFamily("ccmon_queue_oldest_wait_seconds", "Wait so far of the longest-waiting contact",
                                   labels=labels)
        windowed = {name: GaugeMetricFamily(name, doc, labels=[*labels, "window"]) for name, (doc, _) in GAUGES.items()}
        required = GaugeMetricFamily("ccmon_agents_required", "Agents needed for the SL target (Erlang C, last 15m)",
                                     labels=labels)
        for queue, channel in store.series():
            view = store.view(queue, channel, now)
            ql = [queue, channel]
            for name, value in view.counters.items():
                counters[name].add_metric(ql, value)
            for outcome, raw in view.wait_hist.items():
                buckets, total = _histogram_buckets(WAIT_BUCKETS, raw)
                wait.add_metric([*ql, outcome], buckets, total)
            buckets, total = _histogram_buckets(HANDLE_BUCKETS, view.handle_hist)
            handle.add_metric(ql, buckets, total)
            waiting.add_metric(ql, view.waiting)
            oldest.add_metric(ql, view.oldest_wait_s)
            for window in WINDOW_NAMES:
                vec = view.windows[window]
                for name, (_, fn) in GAUGES.items():
                    value = fn(vec)
                    if value is not None:
                        windowed[name].add_metric([*ql, window], value)
            if view.agents_required is not None:
                required.add_metric(ql, view.agents_required)
        agents = GaugeMetricFamily("ccmon_agents", "Agents whose latest state is this, per queue they serve",
                                   labels=["queue", "state"])
        for queue, counts in store.agents():
            for state, n in counts.items():
                agents.add_metric([queue, state], n)
        yield from counters.values()
        yield wait
        yield handle
        yield waiting
        yield oldest
        yield agents
        yield from windowed.values()
        yield required


class ProcessMetrics:
    """Metrics of this process (they restart at 0 with it), with label children cached."""

    def __init__(self, registry: CollectorRegistry, topics: Iterable[str]) -> None:
        self.events = Counter("ccmon_events", "Input events by outcome", ["topic", "result"], registry=registry)
        self.lag = Histogram("ccmon_event_lag_seconds", "Processing time minus event time", ["topic"],
                             buckets=LAG_BUCKETS, registry=registry)
        self.dead_letters = Counter("ccmon_dead_letters", "Rejected inputs by reason", ["reason"], registry=registry)
        self._events: dict[tuple[str, str], Counter] = {}
        self._lag: dict[str, Histogram] = {}
        self._dead: dict[str, Counter] = {}
        for topic in topics:
            for result in (ACCEPTED, DUPLICATE, LATE, REJECTED):
                self.events_child(topic, result)

    def events_child(self, topic: str, result: str) -> Counter:
        child = self._events.get((topic, result))
        if child is None:
            child = self._events[(topic, result)] = self.events.labels(topic, result)
        return child

    def dead_letter_child(self, reason: str) -> Counter:
        child = self._dead.get(reason)
        if child is None:
            child = self._dead[reason] = self.dead_letters.labels(reason)
        return child

    def lag_child(self, topic: str) -> Histogram:
        child = self._lag.get(topic)
        if child is None:
            child = self._lag[topic] = self.lag.labels(topic)
        return child


class ConsumerLagCollector(Collector):
    """Messages behind the end of each assigned partition: the broker's high watermark minus the
    next offset this worker will read. Read at scrape time from the Faust consumer."""

    def __init__(self, consumer: Callable[[], object | None]) -> None:
        self._consumer = consumer

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterator:
        family = GaugeMetricFamily("ccmon_consumer_lag_messages", "Messages behind the end of the partition",
                                   labels=["topic", "partition"])
        consumer = self._consumer()
        if consumer is not None:
            try:
                assignment = consumer.assignment()  # type: ignore[attr-defined]
                read = consumer._read_offset  # type: ignore[attr-defined]
                for tp in sorted(assignment):
                    high, last = consumer.highwater(tp), read.get(tp)  # type: ignore[attr-defined]
                    if high is not None and last is not None:
                        family.add_metric([tp.topic, str(tp.partition)], max(0, high - last - 1))
            except Exception:  # consumer not started or being rebalanced: no sample this scrape
                pass
        yield family
