"""``ccmon simulate``: a seeded, reproducible simulated contact center producing ccmon events.

A discrete-event model: Poisson arrivals per queue and channel, agents with skills who take the
longest-waiting contact they can serve, customers who hang up when their patience runs out,
holds, transfers, wrap-up (sometimes forgotten), and surveys answered minutes after the contact.
Event times are simulation times; the simulation runs in step with the wall clock, after an
optional ``backfill`` of the recent past produced as fast as possible.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from producers.recording import line
from streams.config import Settings

CHANNEL_TOPIC = {"voice": "calls", "chat": "chats"}


@dataclass(frozen=True)
class QueueSpec:
    name: str
    channel: str
    per_minute: float  #: mean arrivals per minute
    talk_s: float  #: mean talk time
    patience_s: float  #: mean patience before abandoning


DEFAULT_QUEUES = (
    QueueSpec("sales", "voice", 2.0, 240, 120),
    QueueSpec("support", "voice", 3.0, 300, 150),
    QueueSpec("billing", "voice", 1.2, 200, 90),
    QueueSpec("support", "chat", 1.2, 420, 300),
    QueueSpec("sales", "chat", 0.6, 300, 240),
)


@dataclass
class _Agent:
    agent_id: str
    queues: list[str]
    channel: str
    state: str = "available"
    contact: str | None = None


@dataclass
class _Contact:
    cid: str
    spec: QueueSpec
    queue: str
    offered: float
    agent: _Agent | None = None
    done: bool = False
    seq: itertools.count = field(default_factory=itertools.count)


class Simulator:
    """Generates events in time order; ``advance(t)`` returns every event up to time ``t``."""

    def __init__(self, seed: int, start: float, queues: tuple[QueueSpec, ...] = DEFAULT_QUEUES,
                 agents: int = 60, transfer_p: float = 0.05, hold_p: float = 0.2,
                 missing_wrapup_p: float = 0.02, survey_p: float = 0.3) -> None:
        self.rng = random.Random(seed)
        self.now = start
        self.queues = queues
        self.p = {"transfer": transfer_p, "hold": hold_p, "nowrap": missing_wrapup_p, "survey": survey_p}
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._tie = itertools.count()
        self._out: list[tuple[str, str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._waiting: list[_Contact] = []
        self.agents: list[_Agent] = []
        names = sorted({q.name for q in queues})
        for i in range(agents):
            channel = "chat" if i % 3 == 2 else "voice"
            served = [q.name for q in queues if q.channel == channel] or names
            skills = self.rng.sample(served, k=min(len(served), self.rng.choice((1, 2, 2, 3))))
            self.agents.append(_Agent(f"agent-{i + 1:03d}", skills, channel))
        for agent in self.agents:
            self._at(start, lambda a=agent: self._agent_state(a, "available"))
        for spec in queues:
            self._at(start + self.rng.expovariate(spec.per_minute / 60), lambda s=spec: self._arrive(s))

    # ---- scheduling ----------------------------------------------------------------------
    def _at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._tie), fn))

    def advance(self, until: float) -> list[tuple[str, str, dict[str, Any]]]:
        while self._heap and self._heap[0][0] <= until:
            t, _, fn = heapq.heappop(self._heap)
            self.now = t
            fn()
        self.now = max(self.now, until)
        out, self._out = self._out, []
        return out

    def _emit(self, topic: str, key: str, event: dict[str, Any]) -> None:
        event = {"event_id": f"e-{next(self._ids)}", **event, "ts": int(round(self.now * 1000))}
        self._out.append((topic, key, event))

    def _contact_event(self, c: _Contact, etype: str, **extra: Any) -> None:
        self._emit(CHANNEL_TOPIC[c.spec.channel], c.cid, {"type": etype, "contact_id": c.cid, **extra})

    def _agent_state(self, agent: _Agent, state: str) -> None:
        agent.state = state
        self._emit("agents", agent.agent_id, {"type": "state", "agent_id": agent.agent_id, "state": state,
                                              "queues": agent.queues})
        if state == "available":
            self._dispatch()

    # ---- contacts --------------------------------------------------------------------------
    def _arrive(self, spec: QueueSpec) -> None:
        c = _Contact(f"{spec.channel[0]}-{next(self._ids)}", spec, spec.name, self.now)
        self._contact_event(c, "offered", queue=spec.name)
        self._enqueue(c)
        self._at(self.now + self.rng.expovariate(spec.per_minute / 60), lambda: self._arrive(spec))

    def _enqueue(self, c: _Contact) -> None:
        c.offered = self.now
        self._waiting.append(c)
        patience = self.rng.expovariate(1 / c.spec.patience_s)
        offered = c.offered
        self._at(self.now + patience, lambda: self._abandon(c, offered))
        self._dispatch()

    def _abandon(self, c: _Contact, offered: float) -> None:
        if c in self._waiting and c.offered == offered:
            self._waiting.remove(c)
            c.done = True
            self._contact_event(c, "abandoned")

    def _dispatch(self) -> None:
        for c in list(self._waiting):
            free = [a for a in self.agents if a.state == "available" and a.channel == c.spec.channel
                    and c.queue in a.queues]
            if not free:
                continue
            agent = self.rng.choice(free)
            self._waiting.remove(c)
            agent.state, agent.contact = "busy", c.cid
            c.agent = agent
            self._at(self.now + self.rng.uniform(0.5, 2.0), lambda c=c, a=agent: self._answer(c, a))

    def _answer(self, c: _Contact, agent: _Agent) -> None:
        self._agent_state(agent, "busy")
        self._contact_event(c, "answered", agent_id=agent.agent_id)
        talk = self.rng.lognormvariate(0, 0.5) * c.spec.talk_s
        if self.rng.random() < self.p["hold"]:
            hold_at = self.rng.uniform(0.2, 0.7) * talk
            hold_len = self.rng.uniform(15, 60)
            self._at(self.now + hold_at, lambda: self._contact_event(c, "hold"))
            self._at(self.now + hold_at + hold_len, lambda: self._contact_event(c, "resume"))
            talk += hold_len
        others = [q.name for q in self.queues if q.channel == c.spec.channel and q.name != c.queue]
        if others and self.rng.random() < self.p["transfer"]:
            self._at(self.now + talk * 0.5, lambda: self._transfer(c, agent, self.rng.choice(others)))
        else:
            self._at(self.now + talk + 1.0, lambda: self._end(c, agent))

    def _transfer(self, c: _Contact, agent: _Agent, target: str) -> None:
        self._contact_event(c, "transferred", queue=target)
        c.queue, c.agent = target, None
        self._agent_state(agent, "available")
        self._enqueue(c)

    def _end(self, c: _Contact, agent: _Agent) -> None:
        self._contact_event(c, "ended")
        self._agent_state(agent, "acw")
        acw = self.rng.uniform(10, 60)
        forgot = self.rng.random() < self.p["nowrap"]
        self._at(self.now + acw, lambda: self._wrap(c, agent, forgot))
        if self.rng.random() < self.p["survey"]:
            self._at(self.now + self.rng.uniform(30, 900), lambda: self._survey(c))

    def _wrap(self, c: _Contact, agent: _Agent, forgot: bool) -> None:
        if not forgot:
            self._contact_event(c, "wrapup_ended")
        c.done = True
        if self.rng.random() < 0.05:
            self._agent_state(agent, "away")
            self._at(self.now + self.rng.uniform(60, 600), lambda: self._agent_state(agent, "available"))
        else:
            self._agent_state(agent, "available")

    def _survey(self, c: _Contact) -> None:
        survey: dict[str, Any] = {"csat": self.rng.choices((1, 2, 3, 4, 5), (5, 5, 15, 35, 40))[0]}
        if self.rng.random() < 0.8:
            survey["nps"] = self.rng.choices(range(11), (2, 1, 1, 2, 2, 4, 6, 10, 20, 25, 27))[0]
        if self.rng.random() < 0.7:
            survey["resolved"] = self.rng.random() < 0.75
        self._contact_event(c, "survey", **survey)


def topic_for(s: Settings, short: str) -> str:
    return {"calls": s.calls_topic, "chats": s.chats_topic, "agents": s.agents_topic}[short]


async def run(s: Settings, *, seed: int, duration: float | None, backfill: float, agents: int,
              output: Path | None, rate: float = 1.0, stop: asyncio.Event | None = None) -> int:
    """Simulate (backfill first, then live) and produce to Kafka or write a recording."""
    start = time.time() - backfill
    queues = tuple(QueueSpec(q.name, q.channel, q.per_minute * rate, q.talk_s, q.patience_s) for q in DEFAULT_QUEUES)
    sim = Simulator(seed, start, queues, agents=agents)
    produced = 0
    wall_start = time.monotonic()
    last_report = wall_start
    if output is not None:
        end = start + backfill + (duration or 0)
        with output.open("wb") as handle:
            for t in _steps(start, end, 60.0):
                for topic, key, event in sim.advance(t):
                    handle.write(line(topic_for(s, topic), key, event))
                    produced += 1
        print(f"ccmon simulate: wrote {produced} events to {output}", file=sys.stderr)
        return produced
    from producers.kafka import start_producer
    producer = await start_producer(s)
    try:
        while True:
            target = time.time()
            if duration is not None and time.monotonic() - wall_start >= duration:
                target = min(target, start + backfill + duration)
            batch = sim.advance(target)
            futures = [await producer.send(topic_for(s, t), _dumps(e), key=k.encode()) for t, k, e in batch]
            if futures:
                await asyncio.gather(*futures)
            produced += len(batch)
            if time.monotonic() - last_report >= 5.0:
                last_report = time.monotonic()
                print(f"ccmon simulate: {produced} events produced, {len(sim._waiting)} waiting now",
                      file=sys.stderr, flush=True)
            if duration is not None and time.monotonic() - wall_start >= duration:
                break
            if stop is not None and stop.is_set():
                break
            await asyncio.sleep(0.2)
    finally:
        await producer.stop()
    print(f"ccmon simulate: {produced} events produced", file=sys.stderr, flush=True)
    return produced


def _steps(start: float, end: float, step: float) -> list[float]:
    n = max(1, int((end - start) // step) + 1)
    return [min(end, start + step * (i + 1)) for i in range(n)]


def _dumps(event: dict[str, Any]) -> bytes:
    import orjson
    return orjson.dumps(event)
