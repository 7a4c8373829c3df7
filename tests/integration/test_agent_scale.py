"""5,000 agents on one worker with CCMON_AGENT_METRICS=true: the cap holds against a flood of
made-up agent ids (dead letters with reason agent_limit), every admitted agent has its 13 series,
and /metrics stays quick enough to scrape (the time is printed for docs/performance.md)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from producers.recording import line
from tests.integration.support import Env, Worker, metric

pytestmark = pytest.mark.integration

AGENTS, FLOOD = 5000, 300


def test_five_thousand_agents_and_a_flood_beyond_the_cap(env: Env, workers: list[Worker]):
    workers.append(Worker(env, CCMON_AGENT_METRICS="true"))
    w = workers[0]
    base = time.time() - 200
    t = env.topics
    lines = []
    for i in range(AGENTS + FLOOD):
        aid = f"agent-{i:05d}"
        for n, state in enumerate(("available", "busy")):
            lines.append(
                line(
                    t["agents"],
                    aid,
                    {
                        "event_id": f"{aid}-{n}",
                        "type": "state",
                        "agent_id": aid,
                        "state": state,
                        "queues": [f"q{i % 20}"],
                        "name": f"Agent {i}",
                        "ts": int((base + n * 60 + i / 100) * 1000),
                    },
                )
            )
    path = env.tmp / "agents.jsonl"
    path.write_bytes(b"".join(lines))
    assert env.ccmon("replay", str(path), timeout=300).returncode == 0
    m = w.wait_for(
        lambda m: (
            (metric(m, "ccmon_dead_letters_total", reason="agent_limit") or 0) >= 2 * FLOOD
            and sum(1 for k in m if k[0] == "ccmon_agent_handled_total") == AGENTS
        ),
        timeout=240,
        what="5,000 agents admitted and the flood dead-lettered",
    )
    assert metric(m, "ccmon_dead_letters_total", reason="agent_limit") == 2 * FLOOD
    series = [k for k in m if k[0].startswith("ccmon_agent_") and k[0] != "ccmon_agents"]
    assert len(series) == 13 * AGENTS
    assert (
        sum(v for k, v in m.items() if k[0] == "ccmon_agent_state" and dict(k[1])["state"] == "busy")
        == AGENTS
    )
    timings, size = [], 0
    for _ in range(5):
        t0 = time.perf_counter()
        with urllib.request.urlopen(w.url("/metrics"), timeout=30) as resp:
            size = len(resp.read())
        timings.append(time.perf_counter() - t0)
    print(
        f"\n{AGENTS} agents: {len(series)} per-agent series; /metrics {size / 1e6:.2f} MB, "
        f"scrape {min(timings) * 1000:.0f}-{max(timings) * 1000:.0f} ms (min-max of 5)"
    )
    with urllib.request.urlopen(w.url("/api/agents"), timeout=30) as resp:
        whole = json.loads(resp.read())
    assert len(whole["agents"]) == whole["total"] == AGENTS and whole["next_offset"] is None
    # paged: 1,000 at a time, in agent id order, the same rows as the whole list (``since`` and the
    # ids; the figures that move with the clock are left out)
    paged, offset, pages = [], 0, 0
    while offset is not None:
        with urllib.request.urlopen(w.url(f"/api/agents?offset={offset}&limit=1000"), timeout=30) as resp:
            page = json.loads(resp.read())
        paged += [(a["agent"], a["state"], a["since"]) for a in page["agents"]]
        offset, pages = page["next_offset"], pages + 1
    assert pages == 5 and paged == [(a["agent"], a["state"], a["since"]) for a in whole["agents"]]
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(w.url("/api/agents?limit=0"), timeout=30)
    assert bad.value.code == 400 and json.loads(bad.value.read()) == {
        "error": "limit must be an integer from 1 to 1000000000, not '0'"
    }
