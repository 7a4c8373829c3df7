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

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, NoReturn

import faust
import orjson
from prometheus_client import CollectorRegistry, generate_latest

from streams import codec, killpoints
from streams.broker_watch import BrokerWatch, RetryNoise
from streams.changelog import Changelog
from streams.config import Settings
from streams.errors import CcmonError
from streams.core.facts import Fact
from streams.core.intake import BatchOutput, Intake, Record, partition_for_queue, record_partition
from streams.core.queues import QueueStore
from streams.exporter import ConsumerLagCollector, ProcessMetrics, StateSizeCollector
from streams.exposition import KpiExposition, owner_filter
from streams.faust_consumer import install as install_consumer
from streams.kafka_auth import faust_credentials
from streams.predecessor import note as note_member
from streams.snapshot import STORE_URL, encode as encode_snapshot, write as write_snapshot
from streams.wallboard import page as wallboard_page
from streams.wallboard import snapshot
# --- agent view (issue 14) ---
from streams import agents as agent_view
from streams.core.agentview import AgentStore
from streams.core.facts import AGENT_ROUTED

log = logging.getLogger("ccmon.worker")

#: the classic text exposition format, which every Prometheus 2.x parses
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def fatal(what: str) -> NoReturn:
    """End the process at once, committing nothing, after a failure that would otherwise let an
    offset commit cover work that was not done. The supervisor restarts the worker, which
    processes everything after the last commit again (exactly, docs/architecture.md)."""
    log.critical("%s failed; exiting without committing offsets, so that the restarted worker "
                 "processes it again", what, exc_info=True)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


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
            broker_credentials=faust_credentials(s),
        )
        self._snapshot_covers: list[dict[int, int]] = []  #: the acked offsets of the last snapshots
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = self.app.topic(s.calls_topic, s.chats_topic, s.agents_topic, partitions=s.partitions, **raw)
        self.facts = self.app.topic(s.facts_topic, partitions=s.partitions, internal=True, **raw)
        # Batch hand-off (issue 15, streams/faust_consumer.py): the consumer hands each fetch's
        # messages of these topics to the agents as whole batches through in-memory channels
        # (a few batches deep: back-pressure), bypassing Faust's per-message Event path; the
        # topics are still Faust's to subscribe (and the facts topic to declare).
        self.input_batches = self.app.channel(maxsize=4)
        self.fact_batches = self.app.channel(maxsize=4)
        for topic in (self.inputs, self.facts):
            self.app.topics.add(topic)
        install_consumer(self.app, before_commit=self._before_commit, batch_size=s.batch_size, batch_channels={
            **{name: self.input_batches for name in self.inputs.topics},
            **{name: self.fact_batches for name in self.facts.topics}})
        self.dead_letters = self.app.topic(s.dead_letter_topic, partitions=s.partitions, **raw)
        self.lifecycle_table = self._table("ccmon-lifecycle")
        self.queue_table = self._table("ccmon-queues")
        self.lifecycle_log = Changelog(self.app, self.lifecycle_table)
        self.queue_log = Changelog(self.app, self.queue_table)
        # --- agent view (issue 14): per-agent records, on the facts partition of the agent id ---
        self.agent_table = self._table("ccmon-agents")
        self.agent_log = Changelog(self.app, self.agent_table)
        self._agent_store: AgentStore | None = None
        self._agent_store_generation = -1
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics = ProcessMetrics(self.registry, [s.calls_topic, s.chats_topic, s.agents_topic])
        self._intake: Intake | None = None
        self._store: QueueStore | None = None
        self._generation = 0
        self._state_chain: asyncio.Future | None = None
        #: deliveries of changelog writes since the last commit, awaited before the next one
        self._unacked_state: list[Any] = []
        # the agents and the sweep take turns on each state table
        self._lifecycle_lock, self._queues_lock = asyncio.Lock(), asyncio.Lock()
        self._unswept = False  #: a batch has moved watermarks since the last sweep
        self._intake_generation = self._store_generation = -1
        self.ready = False
        self.kpi_text = KpiExposition(self.store, owned=self.owned_partitions)
        self.broker = BrokerWatch(s.bootstrap_servers, self._probe_broker, timeout_s=max(1.0, s.broker_probe_s))
        self.registry.register(self.broker)
        self.registry.register(StateSizeCollector(lambda: {"lifecycle": len(self.lifecycle_table.data),
                                                           "queues": len(self.queue_table.data),
                                                           "agents": len(self.agent_table.data)}))
        self.registry.register(ConsumerLagCollector(lambda: self.app.consumer if self.app.started else None))
        self._build()

    def _table(self, name: str) -> Any:
        """A changelog-backed table whose keys and values are encoded by orjson, held in memory and
        started from a local snapshot when there is a usable one (streams/snapshot.py)."""
        table = self.app.Table(name, partitions=self.settings.partitions, store=STORE_URL,
                               schema=faust.Schema(key_serializer=codec.NAME, value_serializer=codec.NAME))
        table.key_serializer = table.value_serializer = codec.NAME
        if self.settings.snapshot_interval_s > 0:
            # per deployment: workers of other apps may share the data directory
            table.data.path = Path(self.settings.data_dir) / "worker" / "snapshots" / self.settings.app_id / f"{name}.snap"
        return table

    async def write_snapshots(self) -> None:
        """Every table with the changelog offsets it covers, at a moment when every batch processed
        has its state written and acknowledged (the locks hold the agents and the sweep, the state
        chain and a producer flush finish the writes), so each snapshot equals its changelog up to
        those offsets. Encoded here, written to disk in a thread."""
        async with self._lifecycle_lock, self._queues_lock:
            await self.state_written()
            await self.app.producer.flush()
            covers = [dict(self.lifecycle_log.acked), dict(self.queue_log.acked), dict(self.agent_log.acked)]
            if covers == self._snapshot_covers or self.app.rebalancing or not self.ready:
                return  # nothing written since the last snapshot; or the tables' partitions are moving
            blobs = []
            for table, changelog in ((self.lifecycle_table, self.lifecycle_log), (self.queue_table, self.queue_log),
                                     (self.agent_table, self.agent_log)):
                store = table.data
                if store.path is None:
                    continue
                topic = changelog.topic
                owned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
                offsets = {p: changelog.acked.get(p, store.restored_offsets.get(p)) for p in owned}
                blobs.append((store.path, encode_snapshot(topic, offsets, store.data)))
        t0 = time.perf_counter()
        for path, blob in blobs:
            await asyncio.to_thread(write_snapshot, path, blob)
        self._snapshot_covers = covers
        log.info("snapshots written: %s (%.0f ms)", ", ".join(f"{p.name} {len(b):,} B" for p, b in blobs),
                 (time.perf_counter() - t0) * 1e3)

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

    # --- agent view (issue 14) ------------------------------------------------------------
    def agent_store(self) -> AgentStore:
        if self._agent_store is None or self._agent_store_generation != self._generation:
            self._agent_store = AgentStore(self.agent_table.data, self.settings)
            self._agent_store_generation = self._generation
        return self._agent_store

    def owned_facts_partitions(self) -> frozenset[int]:
        """Facts partitions whose agents this worker exports now: the same as its queues'
        (``owned_partitions``), none while a rebalance runs."""
        return self.owned_partitions()

    def agent_owner_filter(self) -> Any:
        """Predicate: is this agent's record on a partition this worker owns? Exported agents pass
        it, so with several workers each agent appears on exactly one."""
        owned, n = self.owned_facts_partitions(), self.settings.partitions
        return lambda agent_id: partition_for_queue(agent_id, n) in owned

    async def _write_agent_records(self, store: AgentStore, keys: Iterable[str], gone: Iterable[str] = ()) -> None:
        n, write = self.settings.partitions, self.agent_log.write
        for key in gone:
            self._unacked_state.append(await write(partition_for_queue(key[2:], n), key, None))
        for key in keys:
            self._unacked_state.append(await write(partition_for_queue(key[2:], n), key,
                                                   orjson.dumps(store.data[key])))
    # --- end agent view ------------------------------------------------------------------

    def _build(self) -> None:
        app, s = self.app, self.settings

        @app.on_partitions_assigned.connect
        async def on_partitions_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            killpoints.reached("assigned")

        @app.on_rebalance_complete.connect
        async def on_rebalance_complete(sender: Any, **kwargs: Any) -> None:
            # between two batches: the agents hold these while they change the tables
            async with self._lifecycle_lock, self._queues_lock:
                dropped = self._drop_unowned()
                self._generation += 1
            self.ready = True
            note_member(s, self.member_id())
            log.info("partitions assigned and state recovered (%d records of partitions no longer owned "
                     "dropped); exporting owned queues", dropped)
            killpoints.reached("recovered")

        @app.task
        async def quiet_retries() -> None:
            # the worker has configured logging by now: handlers exist to attach the filter to
            noise = RetryNoise(self.broker)
            for handler in logging.getLogger().handlers:
                handler.addFilter(noise)

        @app.timer(interval=s.broker_probe_s)
        async def watch_broker() -> None:
            await self.broker.check()

        # Each agent gets whole fetched batches (streams/faust_consumer.py) and acknowledges a
        # batch once its state writes are queued; offsets are committed only after those writes
        # are delivered (rule 1). A batch that fails ends the process (``fatal``): Faust would
        # restart the agent, and a later commit could cover the failed batch.
        @app.agent(self.input_batches, name="ccmon-lifecycle-agent")
        async def lifecycle(stream: Any) -> None:
            async for batch in stream:
                try:
                    current = await self._lifecycle_batch(batch.messages)
                except Exception:
                    fatal("a stage-1 batch")
                app.consumer.ack_batch(batch, current)

        @app.agent(self.fact_batches, name="ccmon-queues-agent")
        async def queues(stream: Any) -> None:
            async for batch in stream:
                try:
                    current = await self._queues_batch(batch.messages)
                except Exception:
                    fatal("a stage-2 batch")
                app.consumer.ack_batch(batch, current)

        @app.timer(interval=s.sweep_interval_s)
        async def sweep() -> None:
            try:
                await self._sweep()
            except Exception:  # what it completed in memory would be written without its facts
                fatal("the sweep")

        if s.snapshot_interval_s > 0:
            @app.timer(interval=s.snapshot_interval_s)
            async def snapshot_state() -> None:
                if self.ready and not app.rebalancing and app.flow_control.is_active():
                    await self.write_snapshots()

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            body = self.kpi_text.render().encode() + generate_latest(self.registry)
            if s.agent_metrics:  # agent view (issue 14): per-agent series, off by default
                body += agent_view.render(self.agent_store(), time.time(), self.agent_owner_filter()).encode()
            return web.bytes(body, headers={"Content-Type": METRICS_CONTENT_TYPE})

        @app.page("/wallboard")
        async def wallboard(web: Any, request: Any) -> Any:
            return web.bytes(wallboard_page(), headers={"Content-Type": "text/html; charset=utf-8",
                                                         "Cache-Control": "no-store"})

        @app.page("/api/wallboard")
        async def wallboard_data(web: Any, request: Any) -> Any:
            body = snapshot(self.store(), s, time.time(), self.scope(), self.owned_partitions())
            return web.bytes(orjson.dumps(body), headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-store"})

        # --- agent view (issue 14) ---
        @app.page("/agents")
        async def agents_page(web: Any, request: Any) -> Any:
            return web.bytes(agent_view.page(), headers={"Content-Type": "text/html; charset=utf-8",
                                                          "Cache-Control": "no-store"})

        @app.page("/api/agents")
        async def agents_data(web: Any, request: Any) -> Any:
            body = agent_view.snapshot(self.agent_store(), s, time.time(), self.agent_scope(),
                                       self.agent_owner_filter())
            return web.bytes(orjson.dumps(body), headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-store"})
        # --- end agent view ---

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            healthy = self.ready and self.broker.up is not False
            body = {"ready": self.ready, "broker": {None: "unknown", True: "up", False: "down"}[self.broker.up],
                    "queues": self.owned_queue_count()}
            return web.json(body, status=200 if healthy else 503)

    def member_id(self) -> str:
        """This worker's member id in the consumer group (aiokafka's, inside Faust's consumer thread)."""
        try:
            return str(self.app.consumer._thread._consumer._coordinator.member_id or "")
        except AttributeError:  # a Faust that keeps its consumer elsewhere: tests/unit/test_faust_private_api.py
            return ""

    async def _lifecycle_batch(self, messages: list) -> list:
        """Stage 1 of a batch; returns the messages it processed (to acknowledge)."""
        await killpoints.hold()
        current = self._current(messages)
        records = [Record(m.topic, m.partition, m.offset, m.key, m.value) for m in current]
        if not records:
            return current
        async with self._lifecycle_lock:
            t0 = time.perf_counter()
            out = self.intake().process(records)
            self._unswept = True
            t1 = time.perf_counter()
            await self._send(out)
        killpoints.reached("lifecycle-batch")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("lifecycle batch: %d records, %d writes, process %.1f ms, send %.1f ms",
                      len(records), len(out.writes), (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3)
        return current

    async def _queues_batch(self, messages: list) -> list:
        """Stage 2 of a batch; returns the messages it processed (to acknowledge)."""
        await killpoints.hold()
        async with self._queues_lock:
            current = self._current(messages)
            store, agent_store = self.store(), self.agent_store()
            now = time.time()
            dirty: set[str] = set()
            agents_dirty: set[str] = set()
            for m in current:
                for src, offset, idx, row in orjson.loads(m.value)["f"]:
                    if row[0] in AGENT_ROUTED:  # agent view (issue 14)
                        agent_store.apply(Fact.from_wire(row), (src, offset, idx), now, agents_dirty)
                    else:
                        store.apply(Fact.from_wire(row), (src, offset, idx), now, dirty)
            # each record carries its own applied-fact marks, so any later version of it is
            # consistent too: encoding now, after the whole batch, is enough
            await self._write_queue_records(store, dirty)
            await self._write_agent_records(agent_store, agents_dirty)
        killpoints.reached("queues-batch")
        return current

    async def _sweep(self) -> None:
        """Between two batches (the locks), and after the last one too: what the watermarks or the
        clock make due (ACW timeouts, retention, bucket expiry) never waits for the next input."""
        if not self.ready or self.app.rebalancing or not self.app.flow_control.is_active():
            return
        if self._unswept:  # no batch since the last sweep: no watermark has moved
            async with self._lifecycle_lock:
                self._unswept = False
                out = self.intake().sweep()
                if out.facts or out.writes:
                    await self._send(out)
                    killpoints.reached("sweep")
        async with self._queues_lock:
            await self._expire(self.store())
            agent_store = self.agent_store()  # agent view (issue 14)
            gone, changed = agent_store.expire(time.time())
            await self._write_agent_records(agent_store, changed, gone)

    async def _probe_broker(self) -> bool:
        """A metadata request through the worker's own producer connection."""
        client = self.app.producer._ensure_producer().client  # the aiokafka client Faust produces with
        return bool(await client.force_metadata_update())

    def _assigned(self, topics: Iterable[str]) -> set[int]:
        """Partitions of these topics in the assignment Faust recorded last. It records it when
        the assignment arrives, before recovery starts (its on_partitions_assigned signal comes
        after, and a short recovery can complete first); consumer.assignment() is empty while a
        rebalance runs."""
        return {tp.partition for tp in (self.app._assignment or ()) if tp.topic in topics}

    def owned_partitions(self) -> frozenset[int]:
        """The facts partitions whose queues this worker exports now: those assigned to it, and
        none while a rebalance runs (from revocation until the new assignment's state is
        recovered, what this worker holds may be another worker's or incomplete)."""
        if not self.ready or self.app.rebalancing:
            return frozenset()
        return frozenset(self._assigned((self.settings.facts_topic,)))

    def owned_queue_count(self) -> int:
        """Queues this worker exports now (/health): a queue it still holds but no longer owns is
        another worker's to count."""
        mine = owner_filter(self.owned_partitions(), self.settings.partitions)
        return sum(1 for queue in self.store().queues() if mine(queue))

    def scope(self) -> str:
        """What this worker's pages show: with several workers, each shows its own share."""
        owned, n = sorted(self.owned_partitions()), self.settings.partitions
        if len(owned) == n:
            return "all queues (this worker owns every partition)"
        if not owned and (not self.ready or self.app.rebalancing):
            return "this worker's share: none while partitions are being reassigned; other workers show theirs"
        return f"this worker's share: queue partitions {owned} of {n}; other workers show the rest"

    def agent_scope(self) -> str:
        """The agents page's share: agents live on the facts partition of their id (agent view)."""
        owned, n = sorted(self.owned_facts_partitions()), self.settings.partitions
        if len(owned) == n:
            return "all agents (this worker owns every partition)"
        if not owned and (not self.ready or self.app.rebalancing):
            return "this worker's share: none while partitions are being reassigned; other workers show theirs"
        return f"this worker's share: agent partitions {owned} of {n}; other workers show the rest"

    def _current(self, messages: list) -> list:
        """The messages of the current consumer generation, none while the flow is suspended (a
        rebalance). A batch fetched before a rebalance may hold messages of partitions now
        another worker's; those still ours are fetched again from the committed offset, so
        neither is processed here."""
        if not self.app.flow_control.is_active():
            return []
        generation = self.app.consumer_generation_id
        return [m for m in messages if m.generation_id == generation]

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
        inputs = self._assigned((s.calls_topic, s.chats_topic, s.agents_topic))
        facts = self._assigned((s.facts_topic,))
        if not inputs and not facts:
            return 0
        stale = [k for k, v in self.lifecycle_table.data.items() if record_partition(k, v) not in inputs]
        for key in stale:
            del self.lifecycle_table.data[key]
        gone = [k for k in self.queue_table.data.keys() if self._partition_of_key(k) not in facts]
        for key in gone:
            del self.queue_table.data[key]
        n = s.partitions  # agent records (p|agent_id) live on the facts partition of the agent id
        left = [k for k in self.agent_table.data.keys() if partition_for_queue(k[2:], n) not in facts]
        for key in left:
            del self.agent_table.data[key]
        return len(stale) + len(gone) + len(left)

    def _partition_of_key(self, key: str) -> int:
        return partition_for_queue(key.split("|", 2)[1], self.settings.partitions)

    async def _send(self, out: BatchOutput) -> None:
        """Produce one batch's output: facts and dead letters now, the batch's state once the broker
        has acknowledged them. After a crash an event is either in the recovered state with its
        facts delivered, or is processed again from the same state, making facts with the same ids
        (which stage 2 drops if it has them).

        The state write waits in the background, so the next batch is processed meanwhile; writes
        stay in batch order (each waits for the one before) and offsets are committed only after
        them (``state_written``, awaited by the consumer before every commit). Values are encoded
        now: the in-memory records keep changing with the next batches."""
        acks = [await self.facts.send(value=orjson.dumps({"f": rows}), partition=partition)
                for partition, rows in out.facts.items()]
        for dead in out.dead:
            acks.append(await self.dead_letters.send(key=dead.source.key, value=dead.to_json()))
            self.metrics.dead_letter_child(dead.reason).inc()
        writes = [(partition, key, None if value is None else orjson.dumps(value))
                  for key, (partition, value) in out.writes.items()]
        self._state_chain = asyncio.ensure_future(self._write_state(self._state_chain, acks, writes))
        for (topic, result), n in out.results.items():
            self.metrics.events_child(topic, result).inc(n)
        for topic, lag in out.lags:
            self.metrics.lag_child(topic).observe(lag)

    async def _expire(self, store: QueueStore) -> None:
        """Drop and rewrite queue records the clock has moved out of every window."""
        gone, changed = store.expire(time.time())
        partition_of, write = self._partition_of_key, self.queue_log.write
        for key in gone:
            self._unacked_state.append(await write(partition_of(key), key, None))
        await self._write_queue_records(store, changed)

    async def _write_queue_records(self, store: QueueStore, keys: Iterable[str]) -> None:
        """Queue the current value of these queue records for the changelog."""
        partition_of, write = self._partition_of_key, self.queue_log.write
        for key in keys:
            self._unacked_state.append(await write(partition_of(key), key, orjson.dumps(store.data[key])))

    async def _write_state(self, previous: asyncio.Future | None, acks: list, writes: list) -> None:
        if previous is not None:
            await previous
        if acks:
            await asyncio.gather(*acks)
        killpoints.reached("facts-acked")
        write = self.lifecycle_log.write
        for partition, key, value in writes:
            self._unacked_state.append(await write(partition, key, value))
        killpoints.reached("state-queued")

    async def state_written(self) -> None:
        """Returns once the broker has acknowledged the state of every batch handed to ``_send``
        so far and every queue record written; raises if one of them could not be delivered.
        Faust flushes its producer before a commit, but a flush also ends when a write has
        failed (its retries exhausted during a broker outage), and the commit would then cover
        state that is lost; raising here aborts the commit, and the worker restarts from the
        previous one."""
        while self._state_chain is not None and not self._state_chain.done():
            await asyncio.shield(self._state_chain)
        if self._state_chain is not None and self._state_chain.done() and self._state_chain.exception():
            raise self._state_chain.exception()
        pending = len(self._unacked_state)  # writes queued meanwhile wait for the next commit
        if pending:
            await asyncio.gather(*self._unacked_state[:pending])
            del self._unacked_state[:pending]  # not on failure: every later commit fails too

    async def _before_commit(self) -> None:
        try:
            await self.state_written()
        except Exception:  # committing anyway would cover lost state; not committing, lose nothing
            fatal("writing the state to the changelog")
