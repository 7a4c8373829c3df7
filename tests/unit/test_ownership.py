"""A worker shows only the queues of the facts partitions assigned to it now (issue 10), and the
pieces that keep its state and offsets to what it owns."""

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from streams.core.intake import Intake, partition_for_queue, record_partition
from streams.dev.local_pipeline import LocalPipeline
from streams.faust_ext.consumer import HandOffConsumer
from streams.metrics.kpi_exposition import KpiExposition
from streams.wallboard.queues import snapshot
from tests.unit.helpers import AGENTS, CALLS, NOW, Clock, agent, at, ev, feed, samples, settings

QUEUES = ["sales", "support", "billing", "tech", "claims"]


def pipeline() -> LocalPipeline:
    p = LocalPipeline(settings(partitions=4))
    events = [(CALLS, ev("offered", f"c-{q}", at("10:00:00"), queue=q)) for q in QUEUES]
    events.append((AGENTS, agent("a1", "available", QUEUES, at("10:00:00"))))
    feed(p, events, NOW)
    return p


def queues_in(text: str) -> set[str]:
    return {dict(labels)["queue"] for (_, labels) in samples(text)}


def test_metrics_show_exactly_the_queues_of_the_owned_partitions_and_follow_changes():
    p = pipeline()
    by_partition = {q: partition_for_queue(q, 4) for q in QUEUES}
    assert len(set(by_partition.values())) >= 3  # the queues spread over several partitions
    owned: list = [{0, 1}]
    exposition = KpiExposition(lambda: p.store, Clock(NOW), owned=lambda: owned[0])
    assert queues_in(exposition.render()) == {q for q, part in by_partition.items() if part in {0, 1}}
    owned[0] = {2, 3}  # a rebalance moved the partitions: the cached text of the others goes too
    assert queues_in(exposition.render()) == {q for q, part in by_partition.items() if part in {2, 3}}
    owned[0] = frozenset()  # during a rebalance: nothing, not even agents
    text = exposition.render()
    assert queues_in(text) == set() and "ccmon_agents{" not in text
    owned[0] = None  # no ownership given (one process, the unit tests): everything held
    assert queues_in(exposition.render()) == set(QUEUES)


def test_the_wallboard_shows_the_same_share_as_metrics():
    p = pipeline()
    board = snapshot(p.store, p.settings, NOW, "share", owned={partition_for_queue("sales", 4)})
    assert {s["queue"] for s in board["series"]} == {
        q for q in QUEUES if partition_for_queue(q, 4) == partition_for_queue("sales", 4)
    }
    assert snapshot(p.store, p.settings, NOW, "share", owned=set())["series"] == []


def test_every_lifecycle_record_knows_its_partition():
    p = LocalPipeline(settings(partitions=4))
    recs = [
        p.record(CALLS, ev("offered", "c1", at("10:00:00"), queue="sales"), key="c1", partition=3),
        p.record(CALLS, ev("answered", "c1", at("10:00:05"), agent_id="a2"), key="c1", partition=3),
        p.record(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00")), key="a1", partition=2),
    ]
    p.feed(recs, now=NOW)
    parts = {key: record_partition(key, value) for key, value in p.lifecycle.items()}
    # r|: an agent id seen on an input partition (the agent cap), on that partition whatever the id;
    # q|: the queues seen on an input partition (the queue cap), on every partition that saw them
    assert parts == {
        "c|voice|c1": 3,
        "m|cc.calls|3": 3,
        "q|3": 3,
        "r|cc.calls|3|a2": 3,
        "g|a1": 2,
        "m|cc.agents|2": 2,
        "r|cc.agents|2|a1": 2,
        "q|2": 2,
    }


def test_a_watermark_without_an_accepted_event_survives_the_changelog():
    # JSON has no -inf: a partition whose records were all rejected has its watermark stored as null
    p = LocalPipeline(settings())
    p.feed(
        [p.record(CALLS, b"{not json"), p.record(CALLS, ev("offered", "c1", at("10:00:00"), queue="q"))],
        now=NOW,
    )
    assert p.lifecycle["m|cc.calls|0"][1] == 1
    data = {"m|cc.calls|0": [None, 0, 0]}
    intake = Intake(data, settings().kpi)
    assert data["m|cc.calls|0"][0] == -math.inf
    out = intake.process([p.record(CALLS, ev("offered", "c2", at("10:00:01"), queue="q"))], now=NOW)
    assert out.results[(CALLS, "accepted")] == 1 and intake.sweep().writes == {}


def test_messages_of_an_earlier_generation_move_no_offset():
    """Faust acknowledges them unprocessed; counted, an offset past them could be committed."""
    unacked: set = set()
    # fakes of Faust's consumer and message, with only what ack() reads
    consumer: Any = SimpleNamespace(app=SimpleNamespace(consumer_generation_id=5), _unacked_messages=unacked)
    old: Any = SimpleNamespace(generation_id=4, acked=False)
    unacked.add(id(old))
    unacked_of = SimpleNamespace(discard=lambda m: unacked.discard(id(m)))
    consumer._unacked_messages = unacked_of
    assert HandOffConsumer.ack(consumer, old) is False  # no offset bookkeeping was touched
    assert old.acked and not unacked


def test_no_commit_covers_a_state_write_the_broker_did_not_take(tmp_path):
    """Faust flushes its producer before committing offsets, but a flush also ends when a write
    failed; the worker's check before every commit raises instead, so the commit is not made."""
    from streams.worker.app import Pipeline

    async def scenario() -> None:
        pipeline = Pipeline(settings(data_dir=str(tmp_path)))
        loop = asyncio.get_running_loop()
        delivered, lost = loop.create_future(), loop.create_future()
        delivered.set_result("ok")
        lost.set_exception(KafkaTimeoutError("batch expired"))
        pipeline.state_writer._unacked = [delivered]
        await pipeline.state_written()  # delivered: the commit may go ahead
        pipeline.state_writer._unacked = [delivered, lost]
        with pytest.raises(KafkaTimeoutError):
            await pipeline.state_written()
        with pytest.raises(KafkaTimeoutError):  # and so does every later commit: none goes past it
            await pipeline.state_written()

    asyncio.run(scenario())


def test_a_rebalance_drops_every_table_s_records_of_partitions_no_longer_owned_and_health_counts_owned_queues(
    tmp_path,
):
    """Records of partitions moved away go from all three tables (an agent's by the facts partition
    of its id, the agent cap's registry by its input partition); /health counts owned queues."""
    from faust.types import TP

    from streams.worker.app import Pipeline

    s = settings(data_dir=str(tmp_path), partitions=4)
    local = LocalPipeline(s)
    events = [(CALLS, ev("offered", f"c-{q}", at("10:00:00"), queue=q)) for q in QUEUES]
    events += [(CALLS, ev("answered", f"c-{q}", at("10:00:05"), agent_id=f"agent-{q}")) for q in QUEUES]
    events += [(AGENTS, agent(f"agent-{q}", "busy", [q], at("10:00:00"))) for q in QUEUES]
    records = [
        local.record(
            t,
            e,
            key=e.get("contact_id") or e["agent_id"],
            partition=partition_for_queue(e.get("contact_id") or e["agent_id"], 4),
        )
        for t, e in events
    ]
    local.feed(records, now=NOW)
    pipeline = Pipeline(s)
    pipeline.tables.lifecycle.data.update(local.lifecycle)
    pipeline.tables.queues.data.update(local.queues)
    pipeline.tables.agents.data.update(local.agents)
    assert any(k.startswith("r|") for k in local.lifecycle) and len(local.agents) == len(QUEUES)

    kept = {0, 1}
    pipeline.app._assignment = {
        TP(topic, p) for p in kept for topic in (s.calls_topic, s.chats_topic, s.agents_topic, s.topics.facts)
    }
    assert pipeline._drop_unowned() > 0
    assert {record_partition(k, v) for k, v in pipeline.tables.lifecycle.data.items()} <= kept
    assert {partition_for_queue(k.split("|", 2)[1], 4) for k in pipeline.tables.queues.data.keys()} <= kept
    assert {partition_for_queue(k[2:], 4) for k in pipeline.tables.agents.data.keys()} == {
        partition_for_queue(f"agent-{q}", 4) for q in QUEUES
    } & kept

    pipeline.ownership.owned_partitions = lambda: frozenset({0})  # type: ignore[method-assign]
    assert pipeline.owned_queue_count() == sum(partition_for_queue(q, 4) == 0 for q in QUEUES) > 0
    pipeline.ownership.owned_partitions = lambda: frozenset()  # type: ignore[method-assign]
    assert pipeline.owned_queue_count() == 0
