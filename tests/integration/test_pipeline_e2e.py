"""Scripted recordings through the real broker and a real worker; exact values on /metrics."""

from __future__ import annotations

import asyncio
import base64
import math
import signal
import time
from datetime import date, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import config
from tests.integration.recordings import scripted
from tests.integration.support import PROCESS_METRICS, Env, Worker, counters, exported, metric
from tests.unit.helpers import SCENARIO_SALES_COUNTERS

pytestmark = pytest.mark.integration


def on_day(base: float, offsets: list[float], day: date) -> int:
    """How many of the script's events at ``offsets`` fall on ``day`` in CCMON_TIMEZONE."""
    zone = config.load().zone
    return sum(1 for o in offsets if datetime.fromtimestamp(base + o, zone).date() == day)


def scrape_of_one_day(w: Worker) -> tuple[dict, date]:
    """A scrape and the calendar day it saw (the worker's CCMON_TIMEZONE, inherited from this
    environment); scraped again if midnight falls during it."""
    zone = config.load().zone
    while True:
        before = datetime.fromtimestamp(time.time(), zone).date()
        m = w.scrape()
        if datetime.fromtimestamp(time.time(), zone).date() == before:
            return m, before


def kpi_series(m: dict) -> dict:
    """Every series computed from state (SPEC §4), i.e. all but the process metrics."""
    return {k: v for k, v in m.items() if not k[0].startswith(PROCESS_METRICS) and k[0].startswith("ccmon_")}


async def consume_all(env: Env, topic: str, expect: int, timeout: float = 30) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=env.kafka.address,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def test_scripted_recording_gives_exact_kpis_and_survives_restarts(env: Env, workers: list[Worker]):
    workers.append(Worker(env))
    w = workers[0]
    # bucket-aligned base so that the 5m window edge (now - 300 s) falls in a 55 s gap of the script
    base = math.floor(time.time() / 10) * 10 - 430
    path, expected_dead = scripted(env, base)
    replay = env.ccmon("replay", str(path))
    assert replay.returncode == 0, replay.stderr
    assert "messages from" in replay.stderr

    total_calls = 43  # lines on the calls topic: 34 valid, 2 duplicates, 7 bad
    m = w.wait_settled(
        lambda m: sum(v for (n, labels), v in m.items() if n == "ccmon_events_total") == 57,
        what="all 57 inputs accounted for",
    )
    now = time.time()
    calls, agents = env.topics["calls"], env.topics["agents"]
    assert metric(m, "ccmon_events_total", topic=calls, result="accepted") == total_calls - 9
    assert metric(m, "ccmon_events_total", topic=calls, result="duplicate") == 2
    assert metric(m, "ccmon_events_total", topic=calls, result="rejected") == 7
    assert metric(m, "ccmon_events_total", topic=env.topics["chats"], result="accepted") == 7
    assert metric(m, "ccmon_events_total", topic=agents, result="accepted") == 6
    assert metric(m, "ccmon_events_total", topic=agents, result="rejected") == 1

    sv = {"queue": "sales", "channel": "voice"}
    assert counters(m, sv) == SCENARIO_SALES_COUNTERS
    assert metric(m, "ccmon_wait_seconds_count", **sv, outcome="answered") == 2
    assert metric(m, "ccmon_wait_seconds_sum", **sv, outcome="answered") == pytest.approx(41.0)
    assert metric(m, "ccmon_wait_seconds_bucket", **sv, outcome="answered", le="20.0") == 1
    assert metric(m, "ccmon_wait_seconds_count", **sv, outcome="abandoned") == 2
    assert metric(m, "ccmon_wait_seconds_sum", **sv, outcome="abandoned") == pytest.approx(9.999)
    assert metric(m, "ccmon_handle_seconds_count", **sv) == 2
    assert metric(m, "ccmon_handle_seconds_sum", **sv) == pytest.approx(390.0)
    assert metric(m, "ccmon_queue_waiting_contacts", **sv) == 1
    oldest = metric(m, "ccmon_queue_oldest_wait_seconds", **sv)
    assert oldest is not None
    assert now - (base + 420) - 15 <= oldest <= now - (base + 420)

    for window in ("15m", "1h"):
        assert metric(m, "ccmon_offered_contacts", **sv, window=window) == 6
        assert metric(m, "ccmon_abandon_ratio", **sv, window=window) == pytest.approx(1 / 3)
        assert metric(m, "ccmon_service_level_ratio", **sv, window=window) == pytest.approx(1 / 3)
        assert metric(m, "ccmon_asa_seconds", **sv, window=window) == pytest.approx(20.5)
        assert metric(m, "ccmon_aht_seconds", **sv, window=window) == pytest.approx(195.0)
    # today: the script's events on the calendar day (in CCMON_TIMEZONE) of the scrape; near
    # midnight the earlier part of the script belongs to yesterday. Sales voice: offers, answers
    # (c1 after 20 s, in the threshold; c4 after 21 s), abandons (c2; c3 is short, out of the ratios)
    day_m, day = scrape_of_one_day(w)
    offered = on_day(base, [0, 60, 120, 180, 240, 420], day)
    answered, in_threshold, abandoned = (
        on_day(base, [20, 201], day),
        on_day(base, [20], day),
        on_day(base, [65], day),
    )
    assert metric(day_m, "ccmon_offered_contacts", **sv, window="today") == offered
    handled_or_lost = answered + abandoned
    assert metric(day_m, "ccmon_abandon_ratio", **sv, window="today") == (
        pytest.approx(abandoned / handled_or_lost) if handled_or_lost else None
    )
    assert metric(day_m, "ccmon_service_level_ratio", **sv, window="today") == (
        pytest.approx(in_threshold / handled_or_lost) if handled_or_lost else None
    )
    # 5m: c4 offered/answered (21 s), c6 offered, c5 offered, handled 60 s (c4) and 330 s (c1)
    assert metric(m, "ccmon_offered_contacts", **sv, window="5m") == 3
    assert metric(m, "ccmon_abandon_ratio", **sv, window="5m") == 0.0
    assert metric(m, "ccmon_service_level_ratio", **sv, window="5m") == 0.0
    assert metric(m, "ccmon_asa_seconds", **sv, window="5m") == pytest.approx(21.0)
    assert metric(m, "ccmon_aht_seconds", **sv, window="5m") == pytest.approx(195.0)
    assert metric(m, "ccmon_csat_ratio", **sv, window="5m") is None  # no surveys: absent, not 0

    su = {"queue": "support", "channel": "voice"}
    assert metric(m, "ccmon_contacts_offered_total", **su) == 2
    assert metric(m, "ccmon_contacts_handled_total", **su) == 0  # c4 is in wrap-up
    assert metric(m, "ccmon_abandon_ratio", **su, window="5m") == pytest.approx(0.5)
    assert metric(m, "ccmon_service_level_ratio", **su, window="5m") == pytest.approx(0.5)
    assert metric(m, "ccmon_aht_seconds", **su, window="5m") is None

    sc = {"queue": "sales", "channel": "chat"}
    assert metric(m, "ccmon_handle_seconds_sum", **sc) == pytest.approx(95.0)
    assert metric(m, "ccmon_csat_ratio", **sc, window="5m") == 1.0
    assert metric(m, "ccmon_nps_score", **sc, window="5m") == 100.0
    assert metric(m, "ccmon_fcr_ratio", **sc, window="5m") == 1.0
    assert metric(m, "ccmon_ces_score", **sc, window="5m") == 5.0
    # first response: h1 offered at 10 s, first reply at 40 s (the one at 50 s changes nothing)
    assert metric(m, "ccmon_first_response_seconds_count", **sc) == 1
    assert metric(m, "ccmon_first_response_seconds_sum", **sc) == pytest.approx(30.0)
    assert metric(m, "ccmon_first_response_seconds_avg", **sc, window="15m") == pytest.approx(30.0)
    assert metric(m, "ccmon_first_response_seconds_count", **sv) is None  # no voice reply: no series
    assert metric(m, "ccmon_ces_score", **sv, window="1h") is None  # no CES answer: absent, not 0
    assert metric(m, "ccmon_contacts_dequeued_total", **sv, reason="timeout") == 0  # exported at 0
    assert metric(m, "ccmon_offers_missed_total", **sv) == 0

    bv = {"queue": "billing", "channel": "voice"}
    assert {
        r: metric(m, "ccmon_contacts_dequeued_total", **bv, reason=r)
        for r in ("timeout", "empty", "key", "withdraw", "overflow", "other")
    } == {"timeout": 1, "empty": 0, "key": 0, "withdraw": 0, "overflow": 0, "other": 1}
    assert metric(m, "ccmon_offers_missed_total", **bv) == 3
    assert metric(m, "ccmon_wait_seconds_count", **bv, outcome="dequeued") == 2
    assert metric(m, "ccmon_wait_seconds_sum", **bv, outcome="dequeued") == pytest.approx(62.0)
    assert metric(m, "ccmon_wait_seconds_bucket", **bv, outcome="dequeued", le="5.0") == 1
    assert metric(m, "ccmon_contacts_abandoned_total", **bv) == 1
    assert metric(m, "ccmon_queue_waiting_contacts", **bv) == 1  # b5: a missed offer does not end a wait
    for window in ("15m", "1h"):
        # SL = 1 answered within T / (1 answered + 1 abandoned - 0 short + 2 dequeued) = 0.25
        assert metric(m, "ccmon_service_level_ratio", **bv, window=window) == pytest.approx(0.25)
        # abandonment = 1 / (1 + 1): the dequeued contacts are not abandons
        assert metric(m, "ccmon_abandon_ratio", **bv, window=window) == pytest.approx(0.5)
        assert metric(m, "ccmon_asa_seconds", **bv, window=window) == pytest.approx(12.0)
        assert metric(m, "ccmon_aht_seconds", **bv, window=window) == pytest.approx(98.0)
        assert metric(m, "ccmon_ces_score", **bv, window=window) == 6.0
        assert metric(m, "ccmon_csat_ratio", **bv, window=window) == 1.0
        assert metric(m, "ccmon_nps_score", **bv, window=window) == 100.0
        assert metric(m, "ccmon_fcr_ratio", **bv, window=window) == 0.0
    assert metric(m, "ccmon_agents", queue="billing", state="available") == 1
    assert metric(m, "ccmon_agents", queue="billing", state="away") == 1
    # Erlang C over 15m for sales voice: 6 offered in 900 s, AHT 195 s -> A = 1.3 erlangs -> 3 agents
    assert metric(m, "ccmon_agents_required", **sv) == 3

    assert metric(m, "ccmon_agents", queue="sales", state="busy") == 2
    assert metric(m, "ccmon_agents", queue="support", state="busy") == 1
    assert metric(m, "ccmon_agents", queue="support", state="away") == 1
    assert metric(m, "ccmon_agents", queue="support", state="available") == 0

    # every rejected input is in the dead-letter topic with reason, source offset and original bytes
    dead = asyncio.run(consume_all(env, env.topics["dead"], 8))
    source = asyncio.run(consume_all(env, calls, total_calls)) + asyncio.run(consume_all(env, agents, 7))
    by_position = {(r.topic, r.partition, r.offset): r for r in source}
    reasons: dict[str, int] = {}
    for rec in dead:
        doc = orjson.loads(rec.value)
        reasons[doc["reason"]] = reasons.get(doc["reason"], 0) + 1
        original = by_position[(doc["topic"], doc["partition"], doc["offset"])]
        assert base64.b64decode(doc["value_b64"]) == original.value and rec.key == original.key
        assert doc["detail"]
    assert reasons == expected_dead

    # a clean restart, then a SIGKILL: the KPI series come back exactly from the changelogs
    before = kpi_series(m)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        w.stop(sig)
        w = Worker(env)
        workers.append(w)
        after = w.wait_settled(
            lambda m: metric(m, "ccmon_contacts_offered_total", **sv) == 6,
            what="state recovered after restart",
        )
        assert metric(after, "ccmon_events_total", topic=calls, result="accepted") == 0

        # all but what moves with the wall clock: the oldest wait grows, and the 5m window rolls
        # past the script's first events while the restarts run (15m/1h/today cannot, yet)
        def stable(series: dict) -> dict:
            return {
                k: v
                for k, v in series.items()
                if k[0] != "ccmon_queue_oldest_wait_seconds" and ("window", "5m") not in k[1]
            }

        assert stable(kpi_series(after)) == stable(before)
        assert len(stable(before)) > 200  # the comparison covers every queue, channel and window


def test_pipeline_delay_is_measured_from_the_kafka_timestamp_at_each_hop(env: Env, workers: list[Worker]):
    """One offer whose Kafka record is stamped 600 s ago: both of stage 1's hops count it 600 s
    late (in the 300-900 s bucket; each time, if a rebalance at the start delivers it twice).
    Stage 2's records are stage 1's facts, stamped when stage 1 produced them, so its hops are
    seconds, not minutes. Hand-computed, not sampled."""
    workers.append(Worker(env))
    w = workers[0]
    now_ms = int(time.time() * 1000)
    event = {"event_id": "d1", "type": "offered", "contact_id": "c-d1", "queue": "delay", "ts": now_ms}
    stamped_ms = now_ms - 600_000

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=env.kafka.address)
        await producer.start()
        try:
            await producer.send_and_wait(
                env.topics["calls"], orjson.dumps(event), key=b"c-d1", timestamp_ms=stamped_ms
            )
        finally:
            await producer.stop()

    asyncio.run(send())
    m = w.wait_for(
        lambda m: (
            metric(m, "ccmon_contacts_offered_total", queue="delay", channel="voice") == 1
            and (metric(m, "ccmon_pipeline_delay_seconds_count", hop="stage2_end") or 0) >= 1
        ),
        what="the offer through both stages",
    )
    elapsed = time.time() - stamped_ms / 1000
    for hop in ("stage1_start", "stage1_end"):  # once, or again if a rebalance re-delivers it
        n = exported(m, "ccmon_pipeline_delay_seconds_count", hop=hop)
        assert n >= 1
        assert metric(m, "ccmon_pipeline_delay_seconds_bucket", hop=hop, le="300.0") == 0
        assert metric(m, "ccmon_pipeline_delay_seconds_bucket", hop=hop, le="900.0") == n
        assert 600 * n <= exported(m, "ccmon_pipeline_delay_seconds_sum", hop=hop) <= elapsed * n
    for hop in ("stage2_start", "stage2_end"):
        n = exported(m, "ccmon_pipeline_delay_seconds_count", hop=hop)
        assert n >= 1
        assert metric(m, "ccmon_pipeline_delay_seconds_bucket", hop=hop, le="60.0") == n
