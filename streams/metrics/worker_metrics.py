"""Process metrics of the worker (events by result, event lag, pipeline delay, dead letters,
consumer lag).

They describe this process and restart at 0 with it; the KPI series are streams.metrics.kpi_exposition's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.core.intake import ACCEPTED, DUPLICATE, LATE, REJECTED
from streams.faust_ext.internals import read_offsets

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
#: where a batch is when ``ccmon_pipeline_delay_seconds`` is observed: the stage took it from its
#: channel (fetched and waited for the stage), the stage finished it
HOPS = ("stage1_start", "stage1_end", "stage2_start", "stage2_end")


class ProcessMetrics:
    """Metrics of this process (they restart at 0 with it), with label children cached."""

    def __init__(self, registry: CollectorRegistry, topics: Iterable[str]) -> None:
        self.events = Counter(
            "ccmon_events", "Input events by outcome", ["topic", "result"], registry=registry
        )
        self.lag = Histogram(
            "ccmon_event_lag_seconds",
            "Processing time minus event time",
            ["topic"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        delay = Histogram(
            "ccmon_pipeline_delay_seconds",
            "Seconds from the Kafka timestamp of a batch's oldest record to a hop in this worker "
            "(stage 2's records are stage 1's facts, stamped when stage 1 produced them)",
            ["hop"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        #: hop → its child, all exported from the start (a missing hop reads as "not reached")
        self.delay = {hop: delay.labels(hop) for hop in HOPS}
        self.dead_letters = Counter(
            "ccmon_dead_letters", "Rejected inputs by reason", ["reason"], registry=registry
        )
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
        family = GaugeMetricFamily(
            "ccmon_consumer_lag_messages",
            "Messages behind the end of the partition",
            labels=["topic", "partition"],
        )
        consumer = self._consumer()
        if consumer is not None:
            try:
                assignment = consumer.assignment()  # type: ignore[attr-defined]
                read = read_offsets(consumer)
                for tp in sorted(assignment):
                    high, last = consumer.highwater(tp), read.get(tp)  # type: ignore[attr-defined]
                    if high is not None and last is not None:
                        family.add_metric([tp.topic, str(tp.partition)], max(0, high - last - 1))
            except Exception:  # consumer not started or being rebalanced: no sample this scrape
                pass
        yield family


class StateSizeCollector(Collector):
    """Records held in each state table, read at scrape time: with retention and lateness doing
    their work, they level off instead of growing with every contact ever seen."""

    def __init__(self, sizes: Callable[[], dict[str, int]]) -> None:
        self._sizes = sizes

    def describe(self) -> Iterable:
        return []

    def collect(self) -> Iterator:
        family = GaugeMetricFamily(
            "ccmon_state_records", "Records in this worker's state tables", labels=["table"]
        )
        for table, n in sorted(self._sizes().items()):
            family.add_metric([table], n)
        yield family
