"""Hostile input: 100,000 made-up queue names and 11,900+ malformed events of every kind,
interleaved with valid traffic. The worker keeps running, every bad input is dead-lettered with the
right reason and source offset, the valid KPIs stay exact, the metric set stays within the queue
cap, and memory stays bounded."""

from __future__ import annotations

import asyncio
import base64
import random
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.support import Env, Worker, dead_letters, metric

pytestmark = pytest.mark.integration

MAX_QUEUES = 50
FAKE_QUEUES = 100_000
VALID_CONTACTS = 300
SEED = 6


def valid_lifecycles(base_ms: int) -> list[list[tuple[str, bytes, bytes]]]:
    """Per contact, in order: offered, answered after 10 s, ended after 110 s, wrap-up after 130 s."""
    out = []
    for i in range(VALID_CONTACTS):
        cid = f"v-{i}"
        t0 = base_ms + i * 1000
        steps = [
            ("offered", 0, {"queue": "valid"}),
            ("answered", 10_000, {"agent_id": "a1"}),
            ("ended", 110_000, {}),
            ("wrapup_ended", 130_000, {}),
        ]
        out.append(
            [
                (
                    "calls",
                    cid.encode(),
                    orjson.dumps(
                        {"event_id": f"{cid}-{k}", "type": kind, "contact_id": cid, "ts": t0 + dt, **extra}
                    ),
                )
                for k, (kind, dt, extra) in enumerate(steps)
            ]
        )
    return out


def bad_inputs(rng: random.Random, now_ms: int) -> list[tuple[str, str, bytes, bytes]]:
    """(expected reason, short topic, key, value) of every kind of bad input."""
    out: list[tuple[str, str, bytes, bytes]] = []

    def add(reason: str, topic: str, value: bytes, n: int = 1) -> None:
        for _ in range(n):
            out.append((reason, topic, f"bad-{len(out)}".encode(), value))

    good = {"event_id": "x", "type": "offered", "contact_id": "c-x", "queue": "valid", "ts": now_ms}
    raw = orjson.dumps(good)
    for _ in range(1500):  # truncated JSON
        add("invalid_json", "calls", raw[: rng.randint(1, len(raw) - 1)])
    add("invalid_json", "chats", b"{not json", 500)
    add("invalid_json", "calls", b"", 100)
    add("invalid_json", "calls", b'{"event_id": "n", "type": "offered", "ts": NaN}', 250)
    add("invalid_json", "agents", b'{"event_id": "n", "ts": Infinity}', 250)
    add("invalid_json", "calls", b"[" * 5000 + b"]" * 5000, 100)  # nested beyond orjson's limit
    add("invalid_json", "chats", b'{"a":' * 3000 + b"1" + b"}" * 3000, 100)
    add("invalid_utf8", "calls", b'{"event_id": "\xff\xfe", "type": "offered"}', 1000)
    add("invalid_utf8", "agents", b"\xc3\x28\xa0\xa1", 500)
    add("not_an_object", "calls", b"[1, 2, 3]", 300)
    add("not_an_object", "agents", b'"just a string"', 200)
    for field, value in (("event_id", 42), ("ts", [1]), ("contact_id", {"a": 1}), ("queue", 7)):
        add("invalid_field", "calls", orjson.dumps({**good, field: value}), 300)
    add("invalid_field", "calls", orjson.dumps({**good, "ts": 253402300799001}), 200)  # beyond year 9999
    # beyond the maximum event size (CCMON_MAX_EVENT_BYTES, 64 KiB), whatever else is wrong
    add("too_large", "chats", orjson.dumps({**good, "queue": "q" * 300_000}), 20)  # huge strings
    add("invalid_field", "calls", orjson.dumps({**good, "event_id": "e" * 10_000}), 30)
    add("too_large", "calls", orjson.dumps({**good, "queue": "x" * 900_000}))  # near Kafka's 1 MiB
    for field in ("event_id", "type", "contact_id", "ts", "queue"):
        add("missing_field", "calls", orjson.dumps({k: v for k, v in good.items() if k != field}), 300)
    add(
        "missing_field",
        "agents",
        orjson.dumps({"event_id": "s", "type": "state", "agent_id": "a9", "queues": ["valid"], "ts": now_ms}),
        200,
    )
    add("unknown_type", "calls", orjson.dumps({**good, "type": "teleported"}), 800)
    add(
        "unknown_type",
        "agents",
        orjson.dumps({"event_id": "s", "type": "login", "agent_id": "a9", "ts": now_ms}),
        200,
    )
    add(
        "unknown_state",
        "agents",
        orjson.dumps(
            {
                "event_id": "s",
                "type": "state",
                "agent_id": "a9",
                "state": "sleeping",
                "queues": ["valid"],
                "ts": now_ms,
            }
        ),
        1000,
    )
    add("future_time", "calls", orjson.dumps({**good, "ts": now_ms + 86_400_000}), 700)
    add(
        "future_time",
        "agents",
        orjson.dumps(
            {
                "event_id": "s",
                "type": "state",
                "agent_id": "a9",
                "state": "busy",
                "queues": ["valid"],
                "ts": now_ms + 3_600_000,
            }
        ),
        300,
    )
    for i in range(1000):  # lifecycle violations: contacts nobody offered; those of 1990 are too old
        add(
            "too_old" if i % 2 else "lifecycle",
            "calls",
            orjson.dumps(
                {
                    "event_id": f"l{i}",
                    "type": "answered",
                    "contact_id": f"ghost-{i}",
                    "agent_id": "a1",
                    "ts": 631152000000 if i % 2 else now_ms,
                }
            ),
        )
    return out


async def produce(env: Env, items: list[tuple[str, str, bytes, bytes]]) -> dict[tuple[str, int, int], str]:
    """Send (expected, topic, key, value) in order; returns (topic, partition, offset) → expected."""
    producer = AIOKafkaProducer(
        bootstrap_servers=env.kafka.address,
        linger_ms=20,
        max_request_size=4 * 1024 * 1024,
        max_batch_size=1024 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        futures = [
            (expected, await producer.send(env.topics[topic], value, key=key))
            for expected, topic, key, value in items
        ]
        await producer.flush()
        out = {}
        for expected, fut in futures:
            md = await fut
            out[(md.topic, md.partition, md.offset)] = expected
        return out
    finally:
        await producer.stop()


def test_hostile_input_is_dead_lettered_exactly_and_changes_nothing_else(env: Env, workers: list[Worker]):
    rng = random.Random(SEED)
    # the inputs are stamped around now, so the worker keeps the default 7-day age bound (the
    # deployments of the tests widen it for the recordings of fixed past dates): 1990 is too old
    worker = Worker(env, CCMON_MAX_QUEUES=str(MAX_QUEUES), CCMON_MAX_EVENT_AGE_S=str(7 * 86400))
    workers.append(worker)
    now_ms = int(time.time() * 1000)
    lifecycles = valid_lifecycles(now_ms - 600_000)  # current traffic: nothing late or timed out
    # the valid queue is known first, so that exactly MAX_QUEUES - 1 made-up names fit beside it
    first = [("valid", *lifecycles[0][0])]
    expected = asyncio.run(produce(env, first))
    worker.wait_for(
        lambda m: metric(m, "ccmon_contacts_offered_total", queue="valid", channel="voice") == 1,
        what="the valid queue",
    )
    rss_start = worker.rss()

    bad = bad_inputs(rng, now_ms)
    fakes = [
        (
            "fake",
            "calls" if i % 2 else "chats",
            f"f-{i}".encode(),
            orjson.dumps(
                {
                    "event_id": f"f-{i}",
                    "type": "offered",
                    "contact_id": f"f-{i}",
                    "queue": f"made-up-{i}",
                    "ts": now_ms - 60_000,
                }
            ),
        )
        for i in range(FAKE_QUEUES)
    ]
    valid = [[("valid", *e) for e in events] for events in lifecycles]
    valid[0] = valid[0][1:]
    # interleave at random, each contact's events in their order
    keyed: list[tuple[float, tuple]] = [(rng.random(), item) for item in bad + fakes]
    for events in valid:
        keys = sorted(rng.random() for _ in events)
        keyed.extend(zip(keys, events, strict=True))
    keyed.sort(key=lambda x: x[0])
    items = [item for _, item in keyed]
    expected.update(asyncio.run(produce(env, items)))
    total = len(expected)
    n_bad = len(bad)
    assert n_bad >= 11_900

    def done(m: dict) -> bool:
        return sum(v for (name, _), v in m.items() if name == "ccmon_events_total") >= total

    m = worker.wait_settled(done, timeout=300, what="every input processed")
    rss_end = worker.rss()
    assert worker.proc.poll() is None

    # every rejected input is in the dead-letter topic with the right reason and source offset
    fakes_accepted = MAX_QUEUES - 1
    n_dead = n_bad + FAKE_QUEUES - fakes_accepted
    dead = asyncio.run(dead_letters(env, n_dead, timeout=120))
    assert len(dead) == n_dead
    by_reason: dict[str, int] = {}
    for doc in dead:
        source = (doc["topic"], doc["partition"], doc["offset"])
        want = expected[source]
        reason = doc["reason"]
        assert reason == want or (want == "fake" and reason == "queue_limit"), (
            source,
            want,
            doc["reason"],
            doc["detail"],
        )
        by_reason[reason] = by_reason.get(reason, 0) + 1
        if doc["value_truncated"]:
            assert doc["value_size"] > 256 * 1024 and len(base64.b64decode(doc["value_b64"])) == 256 * 1024
    assert by_reason["queue_limit"] == FAKE_QUEUES - fakes_accepted
    assert sum(1 for d in dead if d["value_truncated"]) == 21  # the 300 KB and 900 KB queues

    rejected = sum(
        v for (name, lab), v in m.items() if name == "ccmon_events_total" and ("result", "rejected") in lab
    )
    assert rejected == n_dead
    # the metric set stays within the cap, and the valid queue's KPIs are exact
    queues = {dict(k[1])["queue"] for k in m if k[0] == "ccmon_contacts_offered_total"}
    assert len(queues) == MAX_QUEUES and "valid" in queues
    v = {"queue": "valid", "channel": "voice"}
    assert metric(m, "ccmon_contacts_offered_total", **v) == VALID_CONTACTS
    assert metric(m, "ccmon_contacts_answered_total", **v) == VALID_CONTACTS
    assert metric(m, "ccmon_contacts_answered_in_threshold_total", **v) == VALID_CONTACTS
    assert metric(m, "ccmon_contacts_handled_total", **v) == VALID_CONTACTS
    assert metric(m, "ccmon_wait_seconds_sum", outcome="answered", **v) == VALID_CONTACTS * 10
    assert metric(m, "ccmon_handle_seconds_sum", **v) == VALID_CONTACTS * 120
    assert metric(m, "ccmon_queue_waiting_contacts", **v) == 0
    growth = rss_end - rss_start
    print(
        f"{total} inputs, {n_dead} dead-lettered ({by_reason}); RSS {rss_start / 2**20:.0f} MiB -> "
        f"{rss_end / 2**20:.0f} MiB"
    )
    assert growth < 300 * 2**20
