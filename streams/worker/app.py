"""The worker: the two Faust agents and the sweep, as thin plumbing around streams.core.

Its parts, one job each: the Faust app and its settings (faust_app.py), the topics and tables
(tables.py), the core's state objects per rebalance generation (state_cache.py), which partitions
it owns (ownership.py), the ordered state-write/commit protocol (state_writer.py) and the HTTP
pages (pages.py). What is left here: the agents, the sweep and snapshots, in turn on each table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any, NoReturn, cast

import orjson
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams import killpoints
from streams.config import Settings
from streams.core.agentview import AgentStore
from streams.core.intake import BatchOutput, DeadLetter, Record
from streams.core.layout import CUSTOMER_CLOCK, agent_record_partition, encode_facts, queue_record_partition
from streams.core.queues import QueueStore
from streams.core.stage2 import apply_message
from streams.faust_ext.consumer import HandOffConsumer
from streams.faust_ext.consumer import install as install_consumer
from streams.faust_ext.internals import member_id, producer_client
from streams.faust_ext.predecessor import note as note_member
from streams.faust_ext.snapshot import encode as encode_snapshot
from streams.faust_ext.snapshot import write as write_snapshot
from streams.kafka.auth import kafka_client
from streams.kafka.broker_watch import BrokerWatch, ClusterProbe, RetryNoise
from streams.metrics.kpi_exposition import KpiExposition
from streams.metrics.worker_metrics import ConsumerLagCollector, ProcessMetrics, StateSizeCollector
from streams.worker import allocator
from streams.worker.faust_app import make_app
from streams.worker.ownership import Ownership
from streams.worker.pages import add_pages
from streams.worker.snapshots import origins as snapshot_origins
from streams.worker.state_cache import StateCache
from streams.worker.state_writer import StateWriter
from streams.worker.tables import Tables

__all__ = ["Pipeline", "fatal"]

log = logging.getLogger("ccmon.worker")


def fatal(what: str) -> NoReturn:
    """End the process at once, committing nothing, after a failure that would otherwise let an
    offset commit cover work that was not done. The supervisor restarts the worker, which
    processes everything after the last commit again (exactly, docs/architecture.md)."""
    log.critical(
        "%s failed; exiting without committing offsets, so that the restarted worker processes it again",
        what,
        exc_info=True,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


class Pipeline:
    """Wires the parts; the agents and the sweep take turns on each state table (the locks)."""

    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        self.app = make_app(s)
        self.tables = Tables(self.app, s)
        install_consumer(
            self.app,
            before_commit=self._before_commit,
            batch_size=s.batching.size,
            batch_channels=self.tables.batch_channels(),
        )
        self.state = StateCache(s, self.tables.lifecycle, self.tables.queues, self.tables.agents)
        self.ownership = Ownership(self.app, s)
        self.state_writer = StateWriter()
        self._snapshot_covers: list[dict[int, int]] = []  #: the acked offsets of the last snapshots
        self._lifecycle_lock, self._queues_lock = asyncio.Lock(), asyncio.Lock()
        self._unswept = False  #: a batch has moved watermarks since the last sweep
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ProcessMetrics(self.registry, [s.calls_topic, s.chats_topic, s.agents_topic])
        self.kpi_text = KpiExposition(self.state.store, owned=self.ownership.owned_partitions)
        probe_timeout_s = max(1.0, s.kafka.broker_probe_s)
        self._cluster_probe = ClusterProbe(
            lambda: kafka_client(s, probe_timeout_s, client_id=f"{s.app_id}-broker-probe")
        )
        self.broker = BrokerWatch(s.kafka.bootstrap_servers, self._cluster_probe, timeout_s=probe_timeout_s)
        self.registry.register(self.broker)
        self.registry.register(StateSizeCollector(self.tables.sizes))
        self.registry.register(ConsumerLagCollector(lambda: self.app.consumer if self.app.started else None))
        self._add_agents()
        add_pages(self)

    def owned_queue_count(self) -> int:
        """Queues this worker exports now (/health): a queue it still holds but no longer owns is
        another worker's to count."""
        mine = self.ownership.queue_filter()
        return sum(1 for queue in self.state.store().queues() if mine(queue))

    async def write_snapshots(self) -> None:
        """Every table with the changelog offsets it covers, at a moment when every batch processed
        has its state written and acknowledged (the locks hold the agents and the sweep, the state
        writer and a producer flush finish the writes), so each snapshot equals its changelog up to
        those offsets. Encoded here, written to disk in a thread."""
        tables = self.tables.with_changelogs()
        try:  # which cluster and topics the snapshots are of: checked before a start (snapshots.py)
            origin = await snapshot_origins(producer_client(self.app), [c.topic for _, c in tables])
        except (KafkaError, ValueError, OSError) as exc:
            log.info("no snapshot this time: the changelogs' ids are unknown (%r)", exc)
            return
        async with self._lifecycle_lock, self._queues_lock:
            await self.state_written()
            await self.app.producer.flush()
            covers = [dict(changelog.acked) for _, changelog in tables]
            if covers == self._snapshot_covers or self.app.rebalancing or not self.ownership.ready:
                return  # nothing written since the last snapshot; or the tables' partitions are moving
            blobs = []
            for table, changelog in tables:
                store = table.data
                topic = changelog.topic
                if store.path is None or topic not in origin:
                    continue
                owned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
                offsets = {p: changelog.acked.get(p, store.restored_offsets.get(p)) for p in owned}
                blobs.append((store.path, encode_snapshot(topic, offsets, store.data, origin[topic])))
        t0 = time.perf_counter()
        for path, blob in blobs:
            await asyncio.to_thread(write_snapshot, path, blob)
        self._snapshot_covers = covers
        log.info(
            "snapshots written: %s (%.0f ms)",
            ", ".join(f"{p.name} {len(b):,} B" for p, b in blobs),
            (time.perf_counter() - t0) * 1e3,
        )

    def _add_agents(self) -> None:
        app, s = self.app, self.settings

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode: positional-only sender
        async def on_partitions_assigned(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
            killpoints.reached("assigned")

        @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # (as above)
        async def on_rebalance_complete(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
            # between two batches: the agents hold these while they change the tables
            async with self._lifecycle_lock, self._queues_lock:
                dropped = self._drop_unowned()
                self.state.new_generation()
            self.ownership.ready = True
            note_member(s, member_id(app))
            log.info(
                "partitions assigned and state recovered (%d records of partitions no longer owned "
                "dropped); exporting owned queues",
                dropped,
            )
            killpoints.reached("recovered")

        @app.task
        async def quiet_retries() -> None:
            # the worker has configured logging by now: handlers exist to attach the filter to
            noise = RetryNoise(self.broker)
            for handler in logging.getLogger().handlers:
                if not any(isinstance(f, RetryNoise) for f in handler.filters):  # the CLI's, from the start
                    handler.addFilter(noise)

        @app.timer(interval=s.kafka.broker_probe_s)
        async def watch_broker() -> None:
            await self.broker.check()

        @app.on_before_shutdown.connect  # type: ignore[arg-type]  # (as above)
        async def close_probe(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
            await self._cluster_probe.close()

        # Each agent gets whole fetched batches (streams/faust_ext/consumer.py) and acknowledges a
        # batch once its state writes are queued; offsets are committed only after those writes
        # are delivered (rule 1). A batch that fails ends the process (``fatal``): Faust would
        # restart the agent, and a later commit could cover the failed batch.
        @app.agent(self.tables.input_batches, name="ccmon-lifecycle-agent")
        async def lifecycle(stream: Any) -> None:
            async for batch in stream:
                try:
                    current = await self._lifecycle_batch(batch.take())
                except Exception:
                    fatal("a stage-1 batch")
                cast(HandOffConsumer, app.consumer).ack_batch(batch, current)

        @app.agent(self.tables.fact_batches, name="ccmon-queues-agent")
        async def queues(stream: Any) -> None:
            async for batch in stream:
                try:
                    current = await self._queues_batch(batch.take())
                except Exception:
                    fatal("a stage-2 batch")
                cast(HandOffConsumer, app.consumer).ack_batch(batch, current)

        @app.timer(interval=s.batching.sweep_interval_s)
        async def sweep() -> None:
            try:
                await self._sweep()
            except Exception:  # what it completed in memory would be written without its facts
                fatal("the sweep")
            # the heap's free pages back to the system (allocator.py), off the event loop
            await asyncio.to_thread(allocator.release)

        if s.batching.snapshot_interval_s > 0:

            @app.timer(interval=s.batching.snapshot_interval_s)
            async def snapshot_state() -> None:
                if self.ownership.ready and not app.rebalancing and app.flow_control.is_active():
                    await self.write_snapshots()

    async def _lifecycle_batch(self, messages: list[Any]) -> list[Any]:
        """Stage 1 of a batch; returns the messages it processed (to acknowledge)."""
        await killpoints.hold()
        oldest = self._delay("stage1_start", messages)
        current = self.ownership.current(messages)
        records = [Record(m.topic, m.partition, m.offset, m.key, m.value) for m in current]
        if not records:
            return current
        async with self._lifecycle_lock:
            t0 = time.perf_counter()
            out = self.state.intake().process(records)
            self._unswept = True
            t1 = time.perf_counter()
            await self._send(out)
        self.metrics.delay["stage1_end"].observe(max(0.0, time.time() - oldest))
        killpoints.reached("lifecycle-batch")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "lifecycle batch: %d records, %d writes, process %.1f ms, send %.1f ms",
                len(records),
                len(out.writes),
                (t1 - t0) * 1e3,
                (time.perf_counter() - t1) * 1e3,
            )
        return current

    async def _queues_batch(self, messages: list[Any]) -> list[Any]:
        """Stage 2 of a batch; returns the messages it processed (to acknowledge)."""
        await killpoints.hold()
        oldest = self._delay("stage2_start", messages)
        async with self._queues_lock:
            current = self.ownership.current(messages)
            store, agent_store = self.state.store(), self.state.agent_store()
            stage = self.state.customer_stage()
            now = time.time()
            dirty: set[str] = set()
            agents_dirty: set[str] = set()
            bad: list[DeadLetter] = []
            derived: dict[int, list[Any]] = {}
            for m in current:
                if stage is not None:
                    stage.begin(m.partition, m.offset)
                apply_customer = stage.apply if stage is not None else None
                for error in apply_message(
                    m.value, store.apply, agent_store.apply, now, dirty, agents_dirty, apply_customer
                ):
                    bad.append(error.dead_letter(m.topic, m.partition, m.offset, m.value))
                if stage is not None:
                    for part, row in stage.take():
                        derived.setdefault(part, []).append(row)
            if bad:
                await self._dead_letter_facts(bad)
            # each record carries its own applied-fact marks, so any later version of it is
            # consistent too: encoding now, after the whole batch, is enough
            if stage is not None:
                await self._send_derived(store, derived, dirty)
            else:
                await self._write_queue_records(store, dirty)
            await self._write_agent_records(agent_store, agents_dirty)
        self.metrics.delay["stage2_end"].observe(max(0.0, time.time() - oldest))
        killpoints.reached("queues-batch")
        return current

    async def _send_derived(self, store: QueueStore, derived: dict[int, list[Any]], dirty: set[str]) -> None:
        """The customer stage's facts for the queues, then the batch's queue-table writes once the
        broker has them (rule 1, as for stage 1: a customer record persisted means its facts were
        delivered), each facts partition's customer clock (``n|``) last (rule 2). Every queue-table
        write goes through the one ordered chain then, so no later version of a record is
        overtaken by an earlier one."""
        facts = self.tables.facts
        acks = [
            await facts.send(value=encode_facts(rows), partition=partition)
            for partition, rows in derived.items()
        ]
        n = self.settings.partitions
        # records, then the customer clocks, then the customers gone (rule 3: a tombstone that
        # persisted implies its clock did, so a replay cannot bring the customer back)
        keys = sorted(dirty, key=lambda k: 2 if k not in store.data else 1 if k[0] == CUSTOMER_CLOCK else 0)
        writes = [
            (queue_record_partition(k, n), k, orjson.dumps(store.data[k]) if k in store.data else None)
            for k in keys
        ]
        self.state_writer.after_acks(acks, self.tables.queue_log, writes)

    async def _dead_letter_facts(self, bad: list[DeadLetter]) -> None:
        """Facts stage 2 could not apply (streams/core/stage2.py): each one is logged once, on one
        line, counted and dead-lettered; the batch goes on without them. The dead letters are
        acknowledged before the batch is, so a commit never covers a fact that left no trace."""
        acks = []
        for dead in bad:
            log.error(
                "a fact on %s[%d] at offset %d could not be applied and is dead-lettered (apply_error): %s",
                dead.source.topic,
                dead.source.partition,
                dead.source.offset,
                dead.detail,
            )
            acks.append(await self.tables.dead_letters.send(key=dead.source.key, value=dead.to_json()))
            self.metrics.dead_letter_child(dead.reason).inc()
        await asyncio.gather(*acks)

    def _delay(self, hop: str, messages: list[Any]) -> float:
        """Observe how long the oldest of ``messages`` (by Kafka timestamp, seconds) has been on its
        way to ``hop``; returns that timestamp. Per batch, not per event: the delay of a batch is
        its oldest record's, what the wallboard waits for."""
        oldest = min((m.timestamp for m in messages), default=time.time())
        self.metrics.delay[hop].observe(max(0.0, time.time() - oldest))
        return oldest

    def _empty_contact_partitions(self) -> list[tuple[str, int]]:
        """Assigned contact partitions that have never held a message (end offset 0), once the
        consumer knows their end; none without customer features."""
        if self.settings.kpi.customer_key is None:
            return []
        consumer = self.app.consumer
        contact = self.settings.kpi.contact_topics
        try:
            return [
                (tp.topic, tp.partition)
                for tp in consumer.assignment()
                if tp.topic in contact and consumer.highwater(tp) == 0
            ]
        except Exception:  # noqa: BLE001  # not started or rebalancing: next sweep
            return []

    async def _sweep(self) -> None:
        """Between two batches (the locks), and after the last one too: what the watermarks or the
        clock make due (ACW timeouts, retention, bucket expiry) never waits for the next input."""
        if not self.ownership.ready or self.app.rebalancing or not self.app.flow_control.is_active():
            return
        if self._unswept:  # no batch since the last sweep: no watermark has moved
            async with self._lifecycle_lock:
                self._unswept = False
                out = self.state.intake().sweep()
                if out.facts or out.writes:
                    await self._send(out)
                    killpoints.reached("sweep")
        empty = self._empty_contact_partitions()
        if empty:  # the customer clocks wait for every contact partition to speak (customers.py)
            async with self._lifecycle_lock:
                out = self.state.intake().declare_empty(empty)
                if out.facts:
                    await self._send(out)
        async with self._queues_lock:
            store = self.state.store()
            gone, changed = store.expire(time.time())
            if self.state.customer_stage() is not None:  # in the chain of the customer stage's writes
                n = self.settings.partitions
                self.state_writer.after_acks(
                    [],
                    self.tables.queue_log,
                    [
                        *((queue_record_partition(k, n), k, None) for k in gone),
                        *((queue_record_partition(k, n), k, orjson.dumps(store.data[k])) for k in changed),
                    ],
                )
            else:
                await self._write_queue_records(store, changed, gone)
            agent_store = self.state.agent_store()
            gone, changed = agent_store.expire(time.time())
            await self._write_agent_records(agent_store, changed, gone)

    def _drop_unowned(self) -> int:
        """Forget the records of partitions no longer assigned here. Faust's memory store drops on
        recovery only the keys it recovered; the records the agents wrote stay, and would be
        exported (and counted twice with their new owner's) or recovered over later.

        The assignment is the one Faust recorded last, not the consumer's: Faust also signals
        "rebalance complete" when a recovery ends because another rebalance has begun, and then
        the consumer's assignment is empty; dropping by it wiped the state of partitions kept
        across the rebalance, which Faust does not recover again (found by the crash search).
        With no assignment known, nothing is dropped."""
        s = self.settings
        inputs = self.ownership.assigned((s.calls_topic, s.chats_topic, s.agents_topic))
        facts = self.ownership.assigned((s.topics.facts,))
        if not inputs and not facts:
            return 0
        return self.tables.drop_unowned(inputs, facts)

    async def _send(self, out: BatchOutput) -> None:
        """Produce one batch's output: facts and dead letters now, the batch's state once the broker
        has acknowledged them (``StateWriter.after_acks``: rules 1 and 2 of state_writer.py).
        Values are encoded now: the in-memory records keep changing with the next batches."""
        facts, dead_letters = self.tables.facts, self.tables.dead_letters
        acks = [
            await facts.send(value=encode_facts(rows), partition=partition)
            for partition, rows in out.facts.items()
        ]
        for dead in out.dead:
            acks.append(await dead_letters.send(key=dead.source.key, value=dead.to_json()))
            self.metrics.dead_letter_child(dead.reason).inc()
        writes = [
            (partition, key, None if value is None else orjson.dumps(value))
            for key, (partition, value) in out.writes.items()
        ]
        self.state_writer.after_acks(acks, self.tables.lifecycle_log, writes)
        for (topic, result), n in out.results.items():
            self.metrics.events_child(topic, result).inc(n)
        for topic, lag in out.lags:
            self.metrics.lag_child(topic).observe(lag)

    async def _write_queue_records(
        self, store: QueueStore, keys: Iterable[str], gone: Iterable[str] = ()
    ) -> None:
        """Queue the current value of these queue records (``None`` for those gone) for the changelog.

        The values first: a crash loses a suffix of a changelog partition, and an expiry's fold
        (``k|``) must not be lost while the ``e|`` buckets it counted are gone (queues.py)."""
        n = self.settings.partitions
        await self.state_writer.write_all(
            self.tables.queue_log,
            (
                *((queue_record_partition(key, n), key, orjson.dumps(store.data[key])) for key in keys),
                *((queue_record_partition(key, n), key, None) for key in gone),
            ),
        )

    async def _write_agent_records(
        self, store: AgentStore, keys: Iterable[str], gone: Iterable[str] = ()
    ) -> None:
        n = self.settings.partitions
        await self.state_writer.write_all(
            self.tables.agent_log,
            (
                *((agent_record_partition(key, n), key, None) for key in gone),
                *((agent_record_partition(key, n), key, orjson.dumps(store.data[key])) for key in keys),
            ),
        )

    async def state_written(self) -> None:
        """Every state write so far is acknowledged (``StateWriter.written``, rule 3)."""
        await self.state_writer.written()

    async def _before_commit(self) -> None:
        try:
            await self.state_written()
        except Exception:  # committing anyway would cover lost state; not committing, lose nothing
            fatal("writing the state to the changelog")
