"""The Faust application: topics, tables and the two agents, as thin plumbing around streams.core.

    cc.calls, cc.chats, cc.agents ──► lifecycle agent (keyed by contact / agent)
                                        │ table ccmon-lifecycle, dead letters ──► cc.dead-letter
                                        ▼ facts, partitioned by queue
                                      ccmon-facts ──► queues agent (keyed by queue)
                                                        │ table ccmon-queues
                                                        ▼
                                                     /metrics (collector reads the table)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from streams import codec
from streams.config import Settings
from streams.errors import CcmonError
from streams.core.facts import Fact
from streams.core.intake import BatchOutput, Intake, Record, partition_for_queue
from streams.core.queues import QueueStore
from streams.exporter import ConsumerLagCollector, ProcessMetrics, StateCollector
from streams.wallboard import page as wallboard_page
from streams.wallboard import snapshot

log = logging.getLogger("ccmon.worker")

#: the classic text exposition format, which every Prometheus 2.x parses
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Pipeline:
    """Holds the app and the state wrappers; ``build`` wires the agents and web pages."""

    def __init__(self, settings: Settings) -> None:
        codec.register()
        s = self.settings = settings
        workdir = Path(s.data_dir) / "worker"
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CcmonError(f"cannot create the data directory {workdir} ({exc.strerror}); "
                             f"set CCMON_DATA_DIR to a writable directory") from None
        self.app = faust.App(
            s.app_id,
            broker=s.broker,
            store="memory://",
            datadir=str(workdir),
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            web_bind=s.web_host,
            web_host=s.web_host,
            web_port=s.web_port,
            consumer_auto_offset_reset="earliest",
            processing_guarantee="at_least_once",
            autodiscover=False,
            broker_commit_every=s.batch_size,
            broker_commit_interval=1.0,
            stream_buffer_maxsize=max(4096, s.batch_size * 2),
            producer_linger=0.005,
            producer_max_batch_size=1024 * 1024,
            producer_max_request_size=8 * 1024 * 1024,
            broker_max_poll_records=max(5000, s.batch_size * 2),
            consumer_max_fetch_size=8 * 1024 * 1024,
            table_standby_replicas=0,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=max(1.0, s.session_timeout_s / 4),
            web_enabled=True,
        )
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = self.app.topic(s.calls_topic, s.chats_topic, s.agents_topic, partitions=s.partitions, **raw)
        self.facts = self.app.topic(s.facts_topic, partitions=s.partitions, internal=True, **raw)
        self.dead_letters = self.app.topic(s.dead_letter_topic, partitions=s.partitions, **raw)
        self.lifecycle_table = self._table("ccmon-lifecycle")
        self.queue_table = self._table("ccmon-queues")
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ProcessMetrics(self.registry, [s.calls_topic, s.chats_topic, s.agents_topic])
        self._intake: Intake | None = None
        self._store: QueueStore | None = None
        self._generation = 0
        self._intake_generation = self._store_generation = -1
        self.ready = False
        self.registry.register(StateCollector(self.store))
        self.registry.register(ConsumerLagCollector(lambda: self.app.consumer if self.app.started else None))
        self._build()

    def _table(self, name: str) -> Any:
        """A changelog-backed table whose keys and values are encoded by orjson."""
        table = self.app.Table(name, partitions=self.settings.partitions,
                               schema=faust.Schema(key_serializer=codec.NAME, value_serializer=codec.NAME))
        table.key_serializer = table.value_serializer = codec.NAME
        return table

    # state wrappers over the tables' stores, rebuilt after every rebalance/recovery
    def intake(self) -> Intake:
        if self._intake is None or self._intake_generation != self._generation:
            self._intake = Intake(self.lifecycle_table.data, self.settings)
            self._intake_generation = self._generation
        return self._intake

    def store(self) -> QueueStore:
        if self._store is None or self._store_generation != self._generation:
            self._store = QueueStore(self.queue_table.data, self.settings)
            self._store_generation = self._generation
        return self._store

    def _build(self) -> None:
        app, s = self.app, self.settings

        @app.on_rebalance_complete.connect
        async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
            self._generation += 1
            self.ready = True
            log.info("partitions assigned and state recovered; exporting owned queues")

        @app.agent(self.inputs, name="ccmon-lifecycle-agent")
        async def lifecycle(stream: Any) -> None:
            last_sweep = time.monotonic()
            async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
                records = [Record(e.message.topic, e.message.partition, e.message.offset, e.message.key,
                                  e.message.value) for e in events]
                intake = self.intake()
                t0 = time.perf_counter()
                out = intake.process(records)
                if time.monotonic() - last_sweep >= s.sweep_interval_s:
                    last_sweep = time.monotonic()
                    swept = intake.sweep()
                    _merge(out, swept)
                t1 = time.perf_counter()
                await self._send(out)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("lifecycle batch: %d records, %d writes, process %.1f ms, send %.1f ms",
                              len(records), len(out.writes), (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)

        @app.agent(self.facts, name="ccmon-queues-agent")
        async def queues(stream: Any) -> None:
            last_expiry = time.monotonic()
            async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
                store = self.store()
                now = time.time()
                dirty: set[str] = set()
                for e in events:
                    for src, offset, idx, row in orjson.loads(e.message.value)["f"]:
                        store.apply(Fact.from_wire(row), (src, offset, idx), now, dirty)
                partition_of = self._partition_of_key
                for key in dirty:
                    self.queue_table.send_changelog(partition_of(key), key, store.data[key])
                if time.monotonic() - last_expiry >= s.sweep_interval_s:
                    last_expiry = time.monotonic()
                    gone, changed = store.expire(now)
                    for key in gone:
                        self.queue_table.send_changelog(partition_of(key), key, None, value_serializer="raw")
                    for key in changed:
                        self.queue_table.send_changelog(partition_of(key), key, store.data[key])

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(self.registry), headers={"Content-Type": METRICS_CONTENT_TYPE})

        @app.page("/wallboard")
        async def wallboard(web: Any, request: Any) -> Any:
            return web.bytes(wallboard_page(), headers={"Content-Type": "text/html; charset=utf-8",
                                                         "Cache-Control": "no-store"})

        @app.page("/api/wallboard")
        async def wallboard_data(web: Any, request: Any) -> Any:
            body = snapshot(self.store(), s, time.time(), self.scope())
            return web.bytes(orjson.dumps(body), headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-store"})

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            body = {"ready": self.ready, "queues": len(self.store().queues())}
            return web.json(body, status=200 if self.ready else 503)

    def scope(self) -> str:
        """What this worker's pages show: with several workers, each shows its own share."""
        try:
            owned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.settings.facts_topic)
        except Exception:  # consumer not started yet
            owned = []
        n = self.settings.partitions
        if len(owned) == n:
            return "all queues (this worker owns every partition)"
        return f"this worker's share: queue partitions {owned} of {n}; other workers show the rest"

    def _partition_of_key(self, key: str) -> int:
        return partition_for_queue(key.split("|", 2)[1], self.settings.partitions)

    async def _send(self, out: BatchOutput) -> None:
        """Produce one batch's output. Facts and dead letters first, acknowledged by the broker,
        and only then the state: after a crash an event is either in the recovered state with its
        facts delivered, or is processed again from the same state, making facts with the same ids
        (which stage 2 drops if it has them)."""
        for partition, rows in out.facts.items():
            await self.facts.send(value=orjson.dumps({"f": rows}), partition=partition)
        for dead in out.dead:
            await self.dead_letters.send(key=dead.source.key, value=dead.to_json())
            self.metrics.dead_letter_child(dead.reason).inc()
        if out.facts or out.dead:
            await self.app.producer.flush()
        table = self.lifecycle_table
        for key, (partition, value) in out.writes.items():
            if value is None:
                table.send_changelog(partition, key, None, value_serializer="raw")
            else:
                table.send_changelog(partition, key, value)
        for (topic, result), n in out.results.items():
            self.metrics.events_child(topic, result).inc(n)
        for topic, lag in out.lags:
            self.metrics.lag_child(topic).observe(lag)


def _merge(into: BatchOutput, other: BatchOutput) -> None:
    for partition, rows in other.facts.items():
        into.facts.setdefault(partition, []).extend(rows)
    into.writes.update(other.writes)
