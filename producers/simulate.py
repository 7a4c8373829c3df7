"""``ccmon simulate``: a seeded, reproducible simulated contact center producing ccmon events.

A discrete-event model driven by a scenario (``producers/scenario.py``): arrivals per queue and
channel from a Poisson process shaped by the hour of the day, agents with skills who take the
longest-waiting contact they can serve (chat agents several at once), customers who hang up when
their patience runs out, holds, transfers, wrap-up (sometimes forgotten), surveys minutes later,
and incidents on a schedule (abandonment spike, agents going away, a burst of bad input).
Same seed and scenario, same events.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from producers.recording import line
from producers.scenario import Incident, QueueSpec, Scenario
from streams.config import Settings

CHANNEL_TOPIC = {"voice": "calls", "chat": "chats"}
SPIKE_RATE, SPIKE_PATIENCE = 3.0, 1 / 8  #: an abandonment spike: 3× arrivals, 1/8 of the patience
# --- the agent view (issue 14): names, breaks with reasons, missed offers, lingering in ACW ---
FIRST = (
    "Ada",
    "Ben",
    "Cleo",
    "Dan",
    "Eva",
    "Finn",
    "Gia",
    "Hugo",
    "Ines",
    "Jon",
    "Kim",
    "Leo",
    "Maya",
    "Nils",
    "Omar",
    "Pia",
    "Raj",
    "Sara",
    "Tom",
    "Uma",
    "Vera",
    "Wes",
    "Yara",
    "Zoe",
)
LAST = (
    "Berg",
    "Costa",
    "Diaz",
    "Engel",
    "Fox",
    "Garcia",
    "Haas",
    "Ito",
    "Jensen",
    "Khan",
    "Lind",
    "Moreau",
    "Novak",
    "Okafor",
    "Park",
    "Quinn",
    "Rossi",
    "Silva",
    "Tan",
    "Ueda",
    "Vogel",
    "Weber",
    "Young",
)
#: break reasons after a contact: (reason, weight, shortest, longest seconds); lunch once a day
BREAKS = (("break", 6, 60, 600), ("lunch", 2, 1800, 3600), ("training", 1, 1200, 3600))
MISSED_PAUSE_S = 30.0  #: an agent who missed an offer is paused (away, reason missed-offer) this long
LINGER_FACTOR = 4.0  #: ACW of a lingering agent is this many times the mean


def agent_name(n: int) -> str:
    """A display name per agent number, deterministic (no draw from the simulation's generator)."""
    return f"{FIRST[(n - 1) % len(FIRST)]} {LAST[((n - 1) // len(FIRST) + (n - 1) * 7) % len(LAST)]}"


Event = tuple[str, str, Any]  #: (short topic, key, event dict or raw bytes)


@dataclass
class _Agent:
    agent_id: str
    skills: tuple[str, ...]
    channel: str
    capacity: int
    state: str = "offline"
    active: set[str] = field(default_factory=set)
    away_until: float = 0.0  #: an agents-away incident, pending until the current contacts end
    name: str = ""
    lingers: bool = False  #: takes LINGER_FACTOR times as long in ACW
    lunched: bool = False
    stuck_until: float = 0.0  #: an agent-stuck incident: stays in ACW until then
    reason: str | None = None  #: of the next state event (away/offline)


@dataclass(eq=False)
class _Contact:
    cid: str
    spec: QueueSpec
    queue: str
    offered: float
    segment: int = 0  #: bumped on transfer: events scheduled for an earlier segment are dropped


class Simulator:
    """Generates events in time order; ``advance(t)`` returns every event up to time ``t``."""

    def __init__(
        self, seed: int, start: float, scenario: Scenario | None = None, incidents: tuple[Incident, ...] = ()
    ) -> None:
        self.sc = scenario or Scenario.default()
        self.rng = random.Random(seed)
        #: ids differ between runs (a second demo, or a second simulator injecting an incident,
        #: must not collide with contacts the worker already knows); the sequence does not
        self.tag = format(int(start * 1000), "x")
        self.start = self.now = start
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._tie = itertools.count()
        self._out: list[Event] = []
        self._ids = itertools.count(1)
        self._waiting: list[_Contact] = []
        self.spikes: dict[str, tuple[float, float]] = {}  #: queue → (from, to)
        self.agents = [
            _Agent(
                f"agent-{n:03d}",
                g.skills,
                g.channel,
                g.chat_concurrency if g.channel == "chat" else 1,
                name=agent_name(n),
            )
            for n, g in enumerate((g for g in self.sc.agents for _ in range(g.count)), 1)
        ]
        #: (channel, queue) → numbers (positions in ``agents``) of the free agents who can serve
        #: it: the dispatch's candidates, kept up to date by ``_refresh`` after every change of an
        #: agent's state, contacts or pending away
        self._free_for: dict[tuple[str, str], set[int]] = {}
        self._number = {id(agent): i for i, agent in enumerate(self.agents)}
        for agent in self.agents:
            for queue in agent.skills:
                self._free_for.setdefault((agent.channel, queue), set())
        lingering = round(len(self.agents) * self.sc.acw_lingerers)
        for agent in self.agents[::-1][:lingering]:  # the last ones: no draw from the generator
            agent.lingers = True
        for agent in self.agents:
            self._at(start + self.rng.uniform(0, 5), partial(self._agent_state, agent, "available"))
        self._peak = max(self.sc.hourly) or 1.0
        for spec in self.sc.queues:
            self._schedule_arrival(spec, start)
        for inc in incidents:
            self._at(start + inc.start_s, partial(self._incident, inc))

    # ---- scheduling ----------------------------------------------------------------------
    def _at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._tie), fn))

    def advance(self, until: float) -> list[Event]:
        while self._heap and self._heap[0][0] <= until:
            t, _, fn = heapq.heappop(self._heap)
            self.now = t
            fn()
        self.now = max(self.now, until)
        out, self._out = self._out, []
        return out

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _emit(self, topic: str, key: str, event: dict[str, Any]) -> None:
        event = {"event_id": f"e-{self.tag}-{next(self._ids)}", **event, "ts": int(round(self.now * 1000))}
        self._out.append((topic, key, event))

    def _contact_event(self, c: _Contact, etype: str, **extra: Any) -> None:
        self._emit(CHANNEL_TOPIC[c.spec.channel], c.cid, {"type": etype, "contact_id": c.cid, **extra})

    def _agent_state(self, agent: _Agent, state: str, reason: str | None = None) -> None:
        if agent.state == state and agent.reason == reason:
            return
        agent.state, agent.reason = state, reason
        self._refresh(agent)
        event = {
            "type": "state",
            "agent_id": agent.agent_id,
            "state": state,
            "queues": list(agent.skills),
            "name": agent.name,
        }
        if reason is not None:
            event["reason"] = reason
        self._emit("agents", agent.agent_id, event)
        if state == "available":
            self._dispatch()

    # ---- arrivals ------------------------------------------------------------------------
    def _rate(self, spec: QueueSpec, t: float) -> float:
        hour = datetime.fromtimestamp(t, UTC).hour
        rate = spec.per_hour / 3600 * self.sc.hourly[hour]
        return rate * (SPIKE_RATE if self._spiking(spec.name, t) else 1.0)

    def _spiking(self, queue: str, t: float) -> bool:
        window = self.spikes.get(queue)
        return window is not None and window[0] <= t < window[1]

    def _schedule_arrival(self, spec: QueueSpec, after: float) -> None:
        """Next arrival of a non-homogeneous Poisson process, by thinning at the peak rate."""
        peak = spec.per_hour / 3600 * self._peak * SPIKE_RATE
        t = after
        while True:
            t += self.rng.expovariate(peak)
            if self.rng.random() * peak <= self._rate(spec, t):
                break
        self._at(t, lambda: self._arrive(spec))

    def _arrive(self, spec: QueueSpec) -> None:
        c = _Contact(f"{spec.channel[0]}-{self.tag}-{next(self._ids)}", spec, spec.name, self.now)
        self._contact_event(c, "offered", queue=spec.name)
        self._enqueue(c)
        self._schedule_arrival(spec, self.now)

    def _enqueue(self, c: _Contact) -> None:
        c.offered = self.now
        self._waiting.append(c)
        mean = c.spec.patience_mean_s * (SPIKE_PATIENCE if self._spiking(c.queue, self.now) else 1.0)
        offered = c.offered
        self._at(self.now + self.rng.expovariate(1 / mean), lambda: self._abandon(c, offered))
        self._dispatch()

    def _abandon(self, c: _Contact, offered: float) -> None:
        if c in self._waiting and c.offered == offered:
            self._waiting.remove(c)
            self._contact_event(c, "abandoned")

    # ---- handling ------------------------------------------------------------------------
    def _free(self, agent: _Agent) -> bool:
        return (
            agent.state in ("available", "busy")
            and len(agent.active) < agent.capacity
            and not agent.away_until
        )

    def _refresh(self, agent: _Agent) -> None:
        """Index the agent as free or not for each queue of its skills (``_free_for``)."""
        number, free = self._number[id(agent)], self._free(agent)
        for queue in agent.skills:
            numbers = self._free_for[(agent.channel, queue)]
            if free:
                numbers.add(number)
            else:
                numbers.discard(number)

    def _dispatch(self) -> None:
        """Each waiting contact, longest first, to the least loaded free agent with its skill (ties
        drawn at random). The candidates are the free agents indexed per (channel, queue), in
        agent order, and a pass ends as soon as no waiting contact's queue has one, so a pass costs
        the waiting contacts seen plus the free candidates, not every agent for every waiting
        contact: a day of 1,000 agents and 300,000 contacts takes minutes, not hours. The same
        draws in the same order as that full scan: the same events for a seed
        (tests/unit/test_simulator_dispatch.py)."""
        if not self._waiting:
            return
        free_for, agents = self._free_for, self.agents
        assigned: set[int] = set()
        for c in self._waiting:
            numbers = free_for.get((c.spec.channel, c.queue))
            if not numbers:
                if not any(free_for.values()):
                    break  # nobody is free: no later contact is served either
                continue
            free = [agents[i] for i in sorted(numbers)]
            agent = min(free, key=lambda a: (len(a.active), self.rng.random()))
            assigned.add(id(c))
            agent.active.add(c.cid)
            self._refresh(agent)
            self._at(self.now + self.rng.uniform(0.5, 2.0), partial(self._answer, c, agent))
        if assigned:
            self._waiting = [c for c in self._waiting if id(c) not in assigned]

    def _answer(self, c: _Contact, agent: _Agent) -> None:
        if self.sc.miss_probability and self.rng.random() < self.sc.miss_probability:
            self._miss(c, agent)
            return
        self._agent_state(agent, "busy")
        self._contact_event(c, "answered", agent_id=agent.agent_id)
        talk = self.rng.lognormvariate(0, 0.5) * c.spec.talk_mean_s
        if self.rng.random() < self.sc.hold_probability:
            hold_at = self.rng.uniform(0.2, 0.7) * talk
            hold_len = self.rng.expovariate(1 / self.sc.hold_mean_s)
            seg = c.segment  # a transfer before the hold ends this segment: no hold/resume after it
            self._at(self.now + hold_at, lambda: self._segment_event(c, seg, "hold"))
            self._at(self.now + hold_at + hold_len, lambda: self._segment_event(c, seg, "resume"))
            talk += hold_len
        if c.spec.channel == "chat":  # the agent's first reply (responded: first response time)
            reply = self.now + min(0.1 * talk, 30.0)  # no draw of its own: the traffic stays as it was
            self._at(reply, partial(self._segment_event, c, c.segment, "responded"))
        others = [q.name for q in self.sc.queues if q.channel == c.spec.channel and q.name != c.queue]
        if others and self.rng.random() < self.sc.transfer_probability:
            self._at(self.now + talk * 0.5, lambda: self._transfer(c, agent, self.rng.choice(others)))
        else:
            self._at(self.now + talk + 1.0, lambda: self._end(c, agent))

    def _miss(self, c: _Contact, agent: _Agent) -> None:
        """The offer rang out: the contact waits on (ahead of later ones), the agent is paused."""
        agent.active.discard(c.cid)
        self._refresh(agent)
        self._contact_event(c, "missed", agent_id=agent.agent_id)
        self._waiting.insert(0, c)
        if not agent.active:
            self._agent_state(agent, "away", "missed-offer")
            self._at(self.now + MISSED_PAUSE_S, lambda: self._back(agent))
        self._dispatch()

    def _segment_event(self, c: _Contact, segment: int, etype: str) -> None:
        if c.segment == segment:
            self._contact_event(c, etype)

    def _release(self, agent: _Agent, cid: str, after_acw: bool) -> None:
        agent.active.discard(cid)
        self._refresh(agent)
        if agent.active:
            self._dispatch()
            return
        if agent.stuck_until > self.now:  # the agent-stuck incident: ACW until it ends
            self._agent_state(agent, "acw")
            return
        if agent.away_until and self.now < agent.away_until:
            self._agent_state(agent, "away", "meeting")
            self._at(agent.away_until, lambda: self._back(agent))
        elif after_acw and self.rng.random() < self.sc.away_probability:
            breaks = [b for b in BREAKS if b[0] != "lunch" or not agent.lunched]
            reason, _, low, high = self.rng.choices(breaks, [b[1] for b in breaks])[0]
            agent.lunched = agent.lunched or reason == "lunch"
            self._agent_state(agent, "away", reason)
            self._at(self.now + self.rng.uniform(low, high), lambda: self._back(agent))
        else:
            agent.away_until = 0.0
            self._refresh(agent)
            self._agent_state(agent, "available")

    def _transfer(self, c: _Contact, agent: _Agent, target: str) -> None:
        self._contact_event(c, "transferred", queue=target)
        c.queue = target
        c.segment += 1
        self._release(agent, c.cid, after_acw=False)
        self._enqueue(c)

    def _end(self, c: _Contact, agent: _Agent) -> None:
        self._contact_event(c, "ended")
        if len(agent.active) == 1:
            self._agent_state(agent, "acw")
        acw = self.rng.expovariate(1 / self.sc.acw_mean_s) * (LINGER_FACTOR if agent.lingers else 1.0)
        forgot = self.rng.random() < self.sc.missing_wrapup_probability
        self._at(self.now + acw, lambda: self._wrap(c, agent, forgot))
        if self.rng.random() < self.sc.survey_rate:
            self._at(self.now + self.rng.uniform(30, self.sc.survey_delay_max_s), lambda: self._survey(c))

    def _wrap(self, c: _Contact, agent: _Agent, forgot: bool) -> None:
        if not forgot:
            self._contact_event(c, "wrapup_ended")
        self._release(agent, c.cid, after_acw=True)

    def _survey(self, c: _Contact) -> None:
        survey: dict[str, Any] = {"csat": self.rng.choices((1, 2, 3, 4, 5), (5, 5, 15, 35, 40))[0]}
        if self.rng.random() < 0.8:
            survey["nps"] = self.rng.choices(range(11), (2, 1, 1, 2, 2, 4, 6, 10, 20, 25, 27))[0]
        if self.rng.random() < 0.7:
            survey["resolved"] = self.rng.random() < 0.75
        if self.rng.random() < self.sc.ces_rate:
            survey["ces"] = self.rng.choices(range(1, 8), (3, 4, 6, 10, 20, 30, 27))[0]
        self._contact_event(c, "survey", **survey)

    # ---- incidents -------------------------------------------------------------------------
    def _incident(self, inc: Incident) -> None:
        if inc.kind == "abandon-spike" and inc.queue is not None:
            self.spikes[inc.queue] = (self.now, self.now + inc.duration_s)
            for spec in self.sc.queues:  # arrivals already scheduled are too far apart: reschedule
                if spec.name == inc.queue:
                    self._schedule_arrival(spec, self.now)
        elif inc.kind == "agents-away":
            until = self.now + inc.duration_s
            for agent in [a for a in self.agents if not a.away_until and a.state != "offline"][: inc.count]:
                agent.away_until = until
                self._refresh(agent)
                if not agent.active:
                    self._agent_state(agent, "away", "meeting")
                    self._at(until, partial(self._back, agent))
        elif inc.kind == "agent-stuck":
            stuck = next((a for a in self.agents if a.agent_id == inc.agent), None)
            if stuck is not None:
                stuck.stuck_until = self.now + inc.duration_s
                if not stuck.active:  # idle or away: into ACW now; busy: after its current contacts
                    self._agent_state(stuck, "acw")
                self._at(stuck.stuck_until, partial(self._unstick, stuck))
        elif inc.kind == "bad-input":
            for i in range(inc.count):
                topic = ("calls", "chats", "agents")[i % 3]
                self._out.append((topic, f"bad-{self.tag}-{next(self._ids)}", _bad_input(self.rng, self.now)))

    def _back(self, agent: _Agent) -> None:
        agent.away_until = 0.0
        self._refresh(agent)
        if agent.state == "away" and agent.stuck_until <= self.now:
            self._agent_state(agent, "available")

    def _unstick(self, agent: _Agent) -> None:
        agent.stuck_until = 0.0
        if agent.state == "acw" and not agent.active:
            self._agent_state(agent, "available")


def _bad_input(rng: random.Random, now: float) -> bytes:
    ts = int(now * 1000)
    return rng.choice(
        [
            b'{"event_id": "x", "type": "offered"',  # truncated JSON
            b"\xff\xfe\x00garbage",  # not UTF-8
            orjson.dumps({"event_id": "x", "type": "teleported", "contact_id": "c", "ts": ts}),
            orjson.dumps(
                {"event_id": "x", "type": "answered", "contact_id": "nobody", "ts": ts, "agent_id": "a"}
            ),
            orjson.dumps({"event_id": "x", "type": "offered", "contact_id": "c", "ts": "soon", "queue": "q"}),
            orjson.dumps(
                {"event_id": "x", "type": "offered", "contact_id": "c", "ts": ts + 3_600_000, "queue": "q"}
            ),
            orjson.dumps(
                {
                    "event_id": "x",
                    "type": "state",
                    "agent_id": "a",
                    "state": "dancing",
                    "queues": [],
                    "ts": ts,
                }
            ),
        ]
    )


def topic_for(s: Settings, short: str) -> str:
    return s.input_topics[short]


def _value(value: Any) -> bytes:
    return value if isinstance(value, bytes) else orjson.dumps(value)


async def run(
    s: Settings,
    *,
    seed: int,
    duration: float | None,
    backfill: float,
    output: Path | None,
    scenario: Scenario | None = None,
    incidents: tuple[Incident, ...] = (),
    speed: float = 1.0,
    stop: asyncio.Event | None = None,
) -> int:
    """Simulate and produce to Kafka (or write a recording). The backfill is produced at once;
    then simulated time runs ``speed`` times faster than the wall clock, ending at the wall clock
    when ``duration`` ends, so no event time is ever in the future."""
    wall0 = time.time()
    compressed = (duration or 0) * (speed - 1)
    start = wall0 - backfill - compressed
    sim = Simulator(seed, start, scenario, incidents)
    counts: Counter[str] = Counter()
    if output is not None:
        end = start + backfill + compressed + (duration or 0)
        with output.open("wb") as handle:
            t = start
            while t < end:
                t = min(end, t + 60)
                for topic, key, value in sim.advance(t):
                    raw = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
                    handle.write(line(topic_for(s, topic), key, raw))
                    counts[topic] += 1
        print(
            f"ccmon simulate: wrote {sum(counts.values())} events to {output} ({_fmt(counts)})",
            file=sys.stderr,
        )
        return sum(counts.values())
    from streams.kafka.producer import start_producer

    producer = await start_producer(s)
    mono0 = last_report = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - mono0
            if duration is not None:
                elapsed = min(elapsed, duration)
            batch = sim.advance(start + backfill + elapsed * speed)
            futures = [await producer.send(topic_for(s, t), _value(v), key=k.encode()) for t, k, v in batch]
            if futures:
                await asyncio.gather(*futures)
            counts.update(t for t, _, _ in batch)
            if time.monotonic() - last_report >= 5.0:
                last_report = time.monotonic()
                print(
                    f"ccmon simulate: {sum(counts.values())} events produced ({_fmt(counts)}), "
                    f"{sim.waiting} waiting now",
                    file=sys.stderr,
                    flush=True,
                )
            if (duration is not None and elapsed >= duration) or (stop is not None and stop.is_set()):
                break
            await asyncio.sleep(0.2)
    finally:
        await producer.stop()
    print(
        f"ccmon simulate: {sum(counts.values())} events produced ({_fmt(counts)})",
        file=sys.stderr,
        flush=True,
    )
    return sum(counts.values())


def _fmt(counts: Counter[str]) -> str:
    return ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items())) or "none"
