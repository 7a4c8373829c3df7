"""One bad event must never stop the monitor (issue 21), on a real worker and broker: events at the
edges of the time formats and an oversized one are rejected in stage 1, and facts that cannot be
applied, produced straight onto the facts topic ahead of valid ones, are dead-lettered by stage 2
while the worker stays up (same process, never restarted) and every KPI stays exact. On the old
code the first such fact ended the worker, and every restarted worker, for good."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.core.facts import Fact, Kind
from streams.core.layout import partition_for_queue
from tests.integration.support import PARTITIONS, Env, Worker, dead_letters, exported, metric

pytestmark = pytest.mark.integration

CONTACTS = 20


def _event(cid: str, k: int, kind: str, ts_ms: int, **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"{cid}-{k}", "type": kind, "contact_id": cid, "ts": ts_ms, **extra})


def _valid(now_ms: int) -> list[tuple[str, bytes, bytes]]:
    """CONTACTS contacts in ``sales``: offered, answered after 5 s, ended, wrapped up."""
    out = []
    for i in range(CONTACTS):
        cid, t0 = f"v{i}", now_ms - 300_000 + i * 1000
        steps = [("offered", 0, {"queue": "sales"}), ("answered", 5000, {"agent_id": "a1"})]
        steps += [("ended", 65_000, {}), ("wrapup_ended", 75_000, {})]
        out += [
            ("calls", cid.encode(), _event(cid, k, kind, t0 + dt, **x))
            for k, (kind, dt, x) in enumerate(steps)
        ]
    return out


def _poison(now_ms: int) -> list[tuple[str, bytes, bytes]]:
    """Inputs at the edges: a year-1 first state (UTC+14; it was accepted as late and broke stage 2
    at the agent's next state), that agent's current state, an offered at year 1, one a second past
    the maximum age, and an event of 300 KiB (the broker's own limit is 1 MiB)."""
    state = {"event_id": "p1", "type": "state", "agent_id": "p", "state": "available", "queues": ["sales"]}
    return [
        ("agents", b"p", orjson.dumps({**state, "ts": "0001-01-01T00:00:00+14:00"})),
        ("agents", b"p", orjson.dumps({**state, "event_id": "p2", "state": "busy", "ts": now_ms})),
        ("calls", b"old", _event("old", 0, "offered", -62135596800000, queue="sales")),
        ("calls", b"old2", _event("old2", 0, "offered", now_ms - 7 * 86_400_000 - 1000, queue="sales")),
        ("calls", b"big", _event("big", 0, "offered", now_ms, queue="sales", pad="x" * (300 << 10))),
    ]


def _crafted_facts(now: float) -> list[bytes]:
    """Messages of the facts topic no stage 1 makes: a fact whose time is text (it raised half-way
    through the old apply, after the totals had counted it), one at year 1 (no local date in
    UTC-12), one whose extra has the wrong shape, and a message that is not JSON."""
    src = "crafted/0"
    offered = Fact(Kind.OFFERED, "sales", "voice", now, "crafted-1").to_wire()
    return [
        orjson.dumps({"f": [[src, 1, 0, [*offered[:3], "yesterday", *offered[4:]]]]}),
        orjson.dumps({"f": [[src, 2, 0, [*offered[:3], -62135596800.0, *offered[4:]]]]}),
        orjson.dumps({"f": [[src, 3, 0, Fact(Kind.AG_STATE, "", "", now, "a1", extra=("busy",)).to_wire()]]}),
        b"not a facts message",
    ]


async def _produce(env: Env, facts: list[bytes], inputs: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=env.kafka.address, max_request_size=4 << 20, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        part = partition_for_queue("sales", PARTITIONS)  # ahead of the valid facts of the same queue
        for value in facts:
            await producer.send_and_wait(f"{env.prefix}.facts", value, partition=part)
        for topic, key, value in inputs:
            await producer.send(env.topics[topic], value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def test_poison_events_and_facts_are_dead_lettered_and_the_worker_stays_up_exact(
    env: Env, workers: list[Worker]
):
    worker = Worker(env, CCMON_TIMEZONE="Etc/GMT+12", CCMON_MAX_EVENT_AGE_S="604800")  # the default
    workers.append(worker)
    pid = worker.proc.pid
    now = time.time()
    now_ms = int(now * 1000)
    asyncio.run(_produce(env, _crafted_facts(now), [*_poison(now_ms), *_valid(now_ms)]))

    def done(m: dict) -> bool:
        return (
            metric(m, "ccmon_contacts_handled_total", queue="sales", channel="voice") == CONTACTS
            and metric(m, "ccmon_dead_letters_total", reason="apply_error") == 4
            and metric(m, "ccmon_agents", queue="sales", state="busy") == 1
        )

    m = worker.wait_settled(done, timeout=120, what="the valid traffic applied past the crafted facts")
    assert worker.proc.poll() is None and worker.proc.pid == pid  # the same process, never restarted
    counts = {
        reason: metric(m, "ccmon_dead_letters_total", reason=reason)
        for reason in ("too_old", "too_large", "apply_error")
    }
    assert counts == {"too_old": 3, "too_large": 1, "apply_error": 4}
    sales = {"queue": "sales", "channel": "voice"}
    assert exported(m, "ccmon_contacts_offered_total", **sales) == CONTACTS  # no crafted offer counted
    assert exported(m, "ccmon_contacts_answered_total", **sales) == CONTACTS
    assert exported(m, "ccmon_contacts_answered_in_threshold_total", **sales) == CONTACTS
    assert exported(m, "ccmon_queue_waiting_contacts", **sales) == 0
    assert exported(m, "ccmon_handle_seconds_sum", **sales) == CONTACTS * 70
    assert exported(m, "ccmon_agents", queue="sales", state="available") == 0

    letters = asyncio.run(dead_letters(env, 8, timeout=60))
    assert len(letters) == 8
    facts = [d for d in letters if d["reason"] == "apply_error"]
    assert {d["topic"] for d in facts} == {f"{env.prefix}.facts"}
    details = sorted(d["detail"] for d in facts)
    assert any("fact 0 of crafted/0 offset 1: ts must be a finite number" in d for d in details), details
    assert any("unreadable facts message" in d for d in details), details
    unreadable = next(d for d in facts if "unreadable" in d["detail"])
    assert base64.b64decode(unreadable["value_b64"]) == b"not a facts message"
    big = next(d for d in letters if d["reason"] == "too_large")
    assert big["value_truncated"] is True and big["value_size"] > 300 << 10
    log = worker.log.read_text()  # once each, on one line
    assert (
        log.count("could not be applied and is dead-lettered (apply_error)") == 4 and "Traceback" not in log
    )
