"""The benchmark's inputs: (short topic, key, value) triples, produced to Kafka by ``produce``.

Short topics are ``calls``, ``chats`` and ``agents``; ``produce`` maps them to the run's topic names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from producers.scenario import Scenario
from producers.simulate import Simulator
from streams.config import Settings
from streams.kafka.producer import start_producer

Event = tuple[str, bytes, bytes]


def mix(n: int, seed: int = 1, now: float | None = None) -> list[Event]:
    """A realistic mix: simulated voice/chat lifecycles, agents, surveys, and ~3 % bad input.

    Event times are shifted so that the last event is a minute before ``now`` (default: the
    clock): no event is in the future (rejected) or, whatever ``n``, so old that windows ignore it.
    The same ``seed`` and ``now`` give the same events."""
    now = time.time() if now is None else now
    t = now - 6 * 3600  # ids unique to this call; the flat profile: the same mix at any hour
    sim = Simulator(seed, t, Scenario.default().scaled(rate=8, agents=8).flat())
    rng = random.Random(seed)
    made: list[tuple[str, bytes, dict, int]] = []
    while len(made) < n:
        t += 60
        for topic, name, event in sim.advance(t):
            if rng.random() < 0.03:
                made.append((topic, name.encode(), event, rng.randrange(1, 5)))
            made.append((topic, name.encode(), event, 0))
    made = made[:n]
    shift = int(now * 1000) - 60_000 - max(e["ts"] for _, _, e, _ in made)
    out: list[Event] = []
    for topic, key, event, bad in made:
        event = {**event, "ts": event["ts"] + shift}
        value = [
            orjson.dumps(event),
            b"{not json",
            b"\xff\xfe",
            orjson.dumps({**event, "type": "bogus"}),
            orjson.dumps({k: v for k, v in event.items() if k != "ts"}),
        ][bad]
        out.append((topic, key, value))
    return out


def busy_day(contacts: int, agents: int, hours: float, now: float, seed: int = 3) -> Iterator[Event]:
    """A busy day of the simulator, ending a minute before ``now``: about ``contacts`` contacts over
    ``hours`` hours (the default scenario's queues and skills, flat, arrivals scaled) and ``agents``
    agents, in order of event time. Talk, hold and wrap-up times shrink by the ratio of staff to
    traffic growth, so the agents are as busy as in the default scenario: 30,000 contacts an hour
    for 1,000 agents are short contacts, and an overloaded center's ever longer queue would make
    the simulator slow down without bound. A generator: the full day is ~2 million events."""
    base = Scenario.default()
    rate = contacts / hours / sum(q.per_hour for q in base.queues)
    staff = agents / sum(g.count for g in base.agents)
    k = min(1.0, staff / rate)
    scenario = dataclasses.replace(
        base.scaled(rate=rate, agents=staff).flat(),
        queues=tuple(
            dataclasses.replace(q, per_hour=q.per_hour * rate, talk_mean_s=q.talk_mean_s * k)
            for q in base.queues
        ),
        hold_mean_s=base.hold_mean_s * k,
        acw_mean_s=base.acw_mean_s * k,
    )
    start = now - 60 - hours * 3600
    sim = Simulator(seed, start, scenario)
    t = start
    while t < now - 60:
        t = min(t + 60, now - 60)
        for topic, key, event in sim.advance(t):
            yield topic, key.encode(), orjson.dumps(event)


def queue_series(queues: int, now_ms: int) -> list[Event]:
    """One answered, handled and surveyed contact and one agent per queue and channel, so that every
    KPI series of ``queues`` × 2 channels is live."""
    out: list[Event] = []
    for q in range(queues):
        queue = f"q{q:04d}"
        for topic in ("calls", "chats"):
            cid = f"{topic}-{queue}"
            steps: list[tuple[str, int, dict[str, object]]] = [
                ("offered", 0, {"queue": queue}),
                ("answered", 12_000, {"agent_id": f"a-{queue}"}),
                ("ended", 200_000, {}),
                ("wrapup_ended", 230_000, {}),
                ("survey", 240_000, {"csat": 5, "nps": 9, "resolved": True}),
            ]
            for i, (kind, dt, extra) in enumerate(steps):
                event = {
                    "event_id": f"{cid}-{i}",
                    "type": kind,
                    "contact_id": cid,
                    "ts": now_ms - 300_000 + dt,
                    **extra,
                }
                out.append((topic, cid.encode(), orjson.dumps(event)))
        out.append(
            (
                "agents",
                f"a-{queue}".encode(),
                orjson.dumps(
                    {
                        "event_id": f"a-{queue}-0",
                        "type": "state",
                        "agent_id": f"a-{queue}",
                        "state": "available",
                        "queues": [queue],
                        "ts": now_ms,
                    }
                ),
            )
        )
    return out


def open_contacts(n: int, queues: int, now_ms: int) -> list[Event]:
    """``n`` contacts offered and still waiting, spread over ``queues`` queues and both channels."""
    out: list[Event] = []
    for i in range(n):
        topic = "calls" if i % 2 else "chats"
        cid = f"open-{i}"
        event = {
            "event_id": f"{cid}-0",
            "type": "offered",
            "contact_id": cid,
            "queue": f"q{i % queues:04d}",
            "ts": now_ms - (i % 600) * 1000,
        }
        out.append((topic, cid.encode(), orjson.dumps(event)))
    return out


def _timed_event(value: bytes) -> dict | None:
    """The event in ``value`` if it is a JSON object with a time (the mix's bad inputs are not)."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "ts" in event else None


def restamp(value: bytes, now_ms: int | None = None) -> bytes:
    event = _timed_event(value)
    if event is None:
        return value
    event["ts"] = int(time.time() * 1000) if now_ms is None else now_ms
    return orjson.dumps(event)


def counts_offered(value: bytes) -> bool:
    """Whether this event adds one to ``ccmon_contacts_offered_total`` (a valid offer or transfer)."""
    event = _timed_event(value)
    return event is not None and event.get("type") in ("offered", "transferred")


def topic_names(s: Settings) -> dict[str, str]:
    return s.input_topics


async def produce(
    s: Settings,
    events: Iterable[Event],
    rate: float | None = None,
    sent: Callable[[float], None] | None = None,
) -> None:
    """Produce every event, as fast as possible or at ``rate`` events/s; ``sent(t)`` gets each send time.

    At a steady rate each valid event's ``ts`` is set to its send time, as a live contact center's
    would be (``paced``)."""
    names = topic_names(s)
    producer = await start_producer(s, linger_ms=20 if rate is None else 2, max_batch_size=512 * 1024)
    try:
        if rate is not None:
            await paced(producer, names, list(events), rate, sent or (lambda t: None))
            return
        for topic, key, value in events:
            await producer.send(names[topic], value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


#: how often ``paced`` sends what has become due: the events of a tick leave together
TICK_S = 0.002


async def paced(
    producer: AIOKafkaProducer,
    names: dict[str, str],
    events: list[Event],
    rate: float,
    sent: Callable[[float], None],
) -> None:
    """Send ``events`` at ``rate``: every tick, what has become due, in one record batch per topic
    partition (the partition the producer's own partitioner gives each key). A live contact
    center's producers run elsewhere; here they share the worker's 2 cores, so the load generator
    must cost little (issue 27): a batch per partition and tick, not one ``send`` per event with a
    sleep before each (the loop woke once per event)."""
    partitioner = DefaultPartitioner()
    partitions = {t: sorted(await producer.partitions_for(name)) for t, name in names.items()}
    placed: dict[tuple[str, bytes], int] = {}  # murmur2 in Python is ~6 µs a key: once per contact
    started = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []

    async def send(topic: str, part: int, batch: Any) -> None:
        batch.close()
        pending.append(await producer.send_batch(batch, names[topic], partition=part))

    i = 0
    while i < len(events):
        due = min(len(events), int((time.perf_counter() - started) * rate) + 1)
        if due <= i:  # the next tick of the grid: never sooner, or each event would leave alone
            elapsed = time.perf_counter() - started
            await asyncio.sleep(TICK_S - elapsed % TICK_S)
            continue
        now_ms = int(time.time() * 1000)
        batches: dict[tuple[str, int], Any] = {}
        for topic, key, value in events[i:due]:
            part = placed.get((topic, key), -1)
            if part < 0:
                parts = partitions[topic]
                part = placed[(topic, key)] = partitioner(key, parts, parts)
            batch = batches.get((topic, part))
            if batch is None:
                batch = batches[(topic, part)] = producer.create_batch()
            value = restamp(value, now_ms)
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                await send(topic, part, batch)
                batch = batches[(topic, part)] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, part), batch in batches.items():
            await send(topic, part, batch)
        t = time.time()
        for _ in range(due - i):
            sent(t)
        i = due
        await asyncio.sleep(0)
    await asyncio.gather(*pending)
