"""Recordings for the multi-worker and crash tests, with fixed timestamps.

The traffic is the simulator's from a fixed start (never the current hour, so the workload is
the same on every run), plus what a real contact center's feed adds: duplicates delivered a
little later, events arriving behind later events of the same contact, surveys hours late, and
hostile inputs; and SPEC's later event types, whatever the simulator emits (dequeued contacts,
missed offers, CES: ``with_later_spec_events``, shared with the unit replay test). Every test
compares workers against a reference worker on the same input, so no expected number depends on
the mix.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from producers.recording import line
from producers.scenario import Scenario
from producers.simulate import Simulator
from tests.unit.helpers import edge_ts, with_customers, with_later_spec_events

if TYPE_CHECKING:
    from tests.integration.support import Env

#: 2026-09-21 12:26:40 UTC: in the past, so nothing is "from the future" for the worker
START = 1_790_000_000.0
#: the default scenario once per site: 6 queues, spread over all 4 facts partitions
SITES = ("north", "south")


def sites(sc: Scenario) -> Scenario:
    """The scenario's queues and agent groups, once per site (queue "sales-north", ...)."""
    return sc.replace(
        queues=tuple(dataclasses.replace(q, name=f"{q.name}-{site}") for site in SITES for q in sc.queues),
        agents=tuple(
            dataclasses.replace(g, skills=tuple(f"{k}-{site}" for k in g.skills))
            for site in SITES
            for g in sc.agents
        ),
    )


def mixed(
    path: Path,
    topics: dict[str, str],
    seed: int,
    minutes: float,
    rate: float = 1.0,
    hostile: int = 200,
    edges: int = 0,
    customers: bool = False,
) -> Counter:
    """Write the recording (``topics`` maps calls/chats/agents to the topic names); returns what
    it holds (event types, duplicates, late arrivals, late surveys, hostile inputs, events at the
    edges of the time formats, lines)."""
    rng = random.Random(seed)
    scenario = sites(
        Scenario.default().scaled(rate=rate, agents=rate).replace(missing_wrapup_probability=0.1)
    )
    rows = with_later_spec_events(Simulator(seed, START, scenario).advance(START + minutes * 60), rng)
    if customers:  # most offered contacts name one of 40 returning customers (issue 24)
        rows = with_customers(rows)
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
            out.append(
                (
                    topic,
                    key,
                    {
                        "event_id": f"late-{e['event_id']}",
                        "type": "survey",
                        "contact_id": e["contact_id"],
                        "ts": e["ts"] + rng.randint(7_200_000, 10_800_000),
                        "csat": rng.randint(1, 5),
                        "nps": rng.randint(0, 10),
                        "resolved": rng.random() < 0.7,
                        "ces": rng.randint(1, 7),
                    },
                )
            )
            kinds["late_surveys"] += 1
    base = int(START * 1000)
    bad = [
        lambda: "{not json",
        lambda: '{"event_id": "h", "type": "offered", "ts": NaN}',
        lambda: {"event_id": f"h{rng.random()}", "type": "teleported", "contact_id": "c", "ts": base},
        lambda: {
            "event_id": f"h{rng.random()}",
            "type": "answered",
            "contact_id": f"nobody-{rng.random()}",
            "ts": base,
        },
        lambda: {"event_id": 7, "type": "offered", "contact_id": "c", "queue": "sales-north", "ts": base},
        lambda: {"event_id": f"h{rng.random()}", "type": "state", "agent_id": "", "ts": base},
    ]
    for _ in range(hostile):
        make = rng.choice(bad)
        value = make()
        topic = (
            "agents"
            if isinstance(value, dict) and value.get("type") == "state"
            else rng.choice(["calls", "chats"])
        )
        out.insert(rng.randint(0, len(out)), (topic, f"hostile-{rng.random()}", value))
    kinds["hostile"] = hostile
    queues = [q.name for q in scenario.queues]
    for n in range(edges):  # times from anywhere in the formats' range (unit helpers.edge_ts)
        ts = edge_ts(rng, START)
        if n % 2:  # a contact offered then: accepted as late, or rejected, as its time says
            offered = {"event_id": f"edge-{n}", "type": "offered", "contact_id": f"edge-{n}"}
            out.insert(
                rng.randint(0, len(out)),
                ("calls", f"edge-{n}", {**offered, "queue": rng.choice(queues), "ts": ts}),
            )
            continue
        # an agent's first state then, and a current one later: the days between are not walked
        state: dict[str, object] = {
            "type": "state",
            "agent_id": f"edge-{n}",
            "state": "available",
            "queues": [rng.choice(queues)],
        }
        later = rng.randint(1, len(out))
        now_ms = base + rng.randint(0, int(minutes * 60_000))
        out.insert(
            later,
            ("agents", f"edge-{n}", {**state, "event_id": f"edge-{n}-b", "state": "busy", "ts": now_ms}),
        )
        out.insert(
            rng.randint(0, later), ("agents", f"edge-{n}", {**state, "event_id": f"edge-{n}-a", "ts": ts})
        )
    kinds["edges"] = edges
    path.write_bytes(b"".join(line(topics[t], k, v) for t, k, v in out))
    kinds["lines"] = len(out)
    return kinds


def scripted(env: Env, base: float) -> tuple[Path, dict]:
    """The recording; event times are offsets (s) from ``base``. Expected values are in the test."""
    t = env.topics
    rows: list[bytes] = []
    n = {"id": 0}

    def call(topic: str, etype: str, cid: str, offset: float, **fields) -> None:
        n["id"] += 1
        ev = {
            "event_id": fields.pop("event_id", f"e{n['id']}"),
            "type": etype,
            "contact_id": cid,
            "ts": int(round((base + offset) * 1000)),
            **fields,
        }
        rows.append(line(topic, cid, ev))

    def agent(aid: str, state: str, queues: list[str], offset: float, **fields) -> None:
        n["id"] += 1
        rows.append(
            line(
                t["agents"],
                aid,
                {
                    "event_id": f"a{n['id']}",
                    "type": "state",
                    "agent_id": aid,
                    "state": state,
                    "queues": queues,
                    "ts": datetime.fromtimestamp(base + offset, UTC).isoformat(),
                    **fields,
                },
            )
        )

    calls, chats = t["calls"], t["chats"]
    agent("a1", "available", ["sales", "support"], 0)
    agent("a2", "busy", ["sales"], 0)
    agent("a3", "away", ["support"], 5)
    call(calls, "offered", "c1", 0, queue="sales")
    call(calls, "answered", "c1", 20, agent_id="a1", event_id="c1-answered")
    call(calls, "answered", "c1", 20, agent_id="a1", event_id="c1-answered")  # duplicate
    agent("a1", "busy", ["sales", "support"], 30)
    call(calls, "hold", "c1", 60)
    call(calls, "offered", "c2", 60, queue="sales")
    call(calls, "abandoned", "c2", 65)
    call(calls, "resume", "c1", 90)
    call(calls, "offered", "c3", 120, queue="sales")
    call(calls, "abandoned", "c3", 124.999)
    call(calls, "offered", "c4", 180, queue="sales")
    call(calls, "answered", "c4", 201, agent_id="a2")
    call(calls, "offered", "c6", 240, queue="sales")
    call(calls, "transferred", "c4", 261, queue="support")
    call(calls, "transferred", "c6", 270, queue="support")
    call(calls, "answered", "c4", 271, agent_id="a3")
    call(calls, "ended", "c1", 320)
    call(calls, "abandoned", "c6", 330)
    call(calls, "wrapup_ended", "c1", 350)
    call(calls, "ended", "c4", 391)
    call(calls, "offered", "c5", 420, queue="sales")
    call(chats, "offered", "h1", 10, queue="sales")
    call(chats, "answered", "h1", 15, agent_id="a4")
    call(chats, "responded", "h1", 40)  # first response 30 s after offered
    call(chats, "responded", "h1", 50)  # a later reply: changes nothing
    call(chats, "ended", "h1", 100)
    call(chats, "wrapup_ended", "h1", 110)
    call(chats, "survey", "h1", 200, csat=4, nps=10, resolved=True, ces=5)
    # billing: missed offers, dequeued contacts (SL denominator), CES; agents with name and reason
    agent("a5", "available", ["billing"], 0, name="Ana Souza")
    agent("a6", "away", ["billing"], 0, reason="training")
    call(calls, "offered", "b1", 0, queue="billing")
    call(calls, "missed", "b1", 5, agent_id="a5")
    call(calls, "missed", "b1", 8, agent_id="a6")
    call(calls, "answered", "b1", 12, agent_id="a7")  # wait 12 s: within T
    call(calls, "ended", "b1", 100)
    call(calls, "wrapup_ended", "b1", 110)  # handle 98 s
    call(calls, "survey", "b1", 200, csat=5, nps=9, resolved=False, ces=6)
    call(calls, "offered", "b2", 30, queue="billing")
    call(calls, "dequeued", "b2", 90, reason="timeout")  # wait 60 s
    call(calls, "offered", "b3", 40, queue="billing")
    call(calls, "dequeued", "b3", 42, event_id="b3-dequeued")  # no reason: other; wait 2 s
    call(calls, "dequeued", "b3", 42, event_id="b3-dequeued")  # duplicate
    call(calls, "offered", "b4", 50, queue="billing")
    call(calls, "abandoned", "b4", 56)  # 6 s: not short
    call(calls, "offered", "b5", 60, queue="billing")
    call(calls, "missed", "b5", 70, agent_id="a5")  # b5 keeps waiting
    # bad input: every one must be dead-lettered with its reason
    rows.append(line(calls, "bad1", "this is not json"))
    rows.append(line(calls, "bad2", "\udcff\udcfe{}"))
    call(calls, "teleported", "bad3", 10)
    call(calls, "answered", "ghost", 10, agent_id="a1")
    call(calls, "offered", "future", 3600 + 430, queue="sales")
    call(calls, "missed", "ghost2", 10, agent_id="a5")  # unknown contact: lifecycle
    call(calls, "dequeued", "b5", 75, reason="no way")  # reason with a space: invalid_field
    agent("a6", "away", ["billing"], 20, reason="lunch!")  # invalid_field
    path = env.tmp / "scripted.jsonl"
    path.write_bytes(b"".join(rows))
    expected_dead = {
        "invalid_json": 1,
        "invalid_utf8": 1,
        "unknown_type": 1,
        "lifecycle": 2,
        "future_time": 1,
        "invalid_field": 2,
    }
    return path, expected_dead
