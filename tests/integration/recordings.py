"""Recordings for the multi-worker and crash tests, with fixed timestamps.

The traffic is the simulator's from a fixed start (never the current hour, so the workload is
the same on every run), plus what a real contact center's feed adds: duplicates delivered a
little later, events arriving behind later events of the same contact, surveys hours late, and
hostile inputs; and SPEC's later event types, whatever the simulator emits (dequeued contacts,
missed offers, CES: ``with_later_spec_events``, shared with the unit replay test). Every test compares workers against a reference worker on the same input, so no
expected number depends on the mix.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter
from pathlib import Path

from producers.recording import line
from producers.scenario import Scenario
from producers.simulate import Simulator
from tests.unit.helpers import with_later_spec_events

#: 2026-09-21 12:26:40 UTC: in the past, so nothing is "from the future" for the worker
START = 1_790_000_000.0
#: the default scenario once per site: 6 queues, spread over all 4 facts partitions
SITES = ("north", "south")


def sites(sc: Scenario) -> Scenario:
    """The scenario's queues and agent groups, once per site (queue "sales-north", ...)."""
    return sc.replace(
        queues=tuple(dataclasses.replace(q, name=f"{q.name}-{site}") for site in SITES for q in sc.queues),
        agents=tuple(dataclasses.replace(g, skills=tuple(f"{k}-{site}" for k in g.skills))
                     for site in SITES for g in sc.agents))


def mixed(path: Path, topics: dict[str, str], seed: int, minutes: float, rate: float = 1.0,
          hostile: int = 200) -> Counter:
    """Write the recording (``topics`` maps calls/chats/agents to the topic names); returns what
    it holds (event types, duplicates, late arrivals, late surveys, hostile inputs, lines)."""
    rng = random.Random(seed)
    scenario = sites(Scenario.default().scaled(rate=rate, agents=rate).replace(missing_wrapup_probability=0.1))
    rows = with_later_spec_events(Simulator(seed, START, scenario).advance(START + minutes * 60), rng)
    kinds: Counter = Counter(e.get("type", "?") for _, _, e in rows if isinstance(e, dict))
    out: list[tuple[str, str | None, object]] = []
    pending: list[tuple[int, int, tuple]] = []  # heap of (deliver after this index, i, row)
    for i, row in enumerate(rows):
        r = rng.random()
        if r < 0.03:  # arrives behind up to 40 later events (some of them its contact's next ones)
            heapq.heappush(pending, (i + rng.randint(1, 40), i, row))
            kinds["late_arrivals"] += 1
        else:
            out.append(row)
            if r > 0.98:  # a producer retry: the same event again, up to 500 events later
                heapq.heappush(pending, (i + rng.randint(1, 500), i, row))
                kinds["duplicates"] += 1
        while pending and pending[0][0] <= i:
            out.append(heapq.heappop(pending)[2])
    out += [heapq.heappop(pending)[2] for _ in range(len(pending))]
    for topic, key, e in rows:  # surveys 2-3 h after their contact ended, at the very end
        if isinstance(e, dict) and e.get("type") == "ended" and rng.random() < 0.1:
            out.append((topic, key, {"event_id": f"late-{e['event_id']}", "type": "survey",
                                     "contact_id": e["contact_id"], "ts": e["ts"] + rng.randint(7_200_000, 10_800_000),
                                     "csat": rng.randint(1, 5), "nps": rng.randint(0, 10),
                                     "resolved": rng.random() < 0.7, "ces": rng.randint(1, 7)}))
            kinds["late_surveys"] += 1
    base = int(START * 1000)
    bad = [lambda: "{not json", lambda: '{"event_id": "h", "type": "offered", "ts": NaN}',
           lambda: {"event_id": f"h{rng.random()}", "type": "teleported", "contact_id": "c", "ts": base},
           lambda: {"event_id": f"h{rng.random()}", "type": "answered", "contact_id": f"nobody-{rng.random()}",
                    "ts": base},
           lambda: {"event_id": 7, "type": "offered", "contact_id": "c", "queue": "sales-north", "ts": base},
           lambda: {"event_id": f"h{rng.random()}", "type": "state", "agent_id": "", "ts": base}]
    for _ in range(hostile):
        make = rng.choice(bad)
        value = make()
        topic = "agents" if isinstance(value, dict) and value.get("type") == "state" else rng.choice(["calls", "chats"])
        out.insert(rng.randint(0, len(out)), (topic, f"hostile-{rng.random()}", value))
    kinds["hostile"] = hostile
    path.write_bytes(b"".join(line(topics[t], k, v) for t, k, v in out))
    kinds["lines"] = len(out)
    return kinds

