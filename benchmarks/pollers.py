"""The event-loop stall of /api/agents at 5,000 agents under 20 concurrent pollers.

    python -m benchmarks.pollers [--agents 5000] [--pollers 20] [--rounds 5]

In-process, no Kafka: the pure pipeline holds the agents, an aiohttp server (the worker's web
server library) serves their JSON two ways on one event loop, and a timer task on that loop
records how late it wakes (the stall: the longest time the loop could not run stage 2, the
consumer or a scrape). Each round, ``--pollers`` threads request the JSON at the same instant,
as agents pages opened together do (they poll once a second):

- ``per_poll``: what the worker did before issue 21: each request renders its own snapshot on
  the loop (``agent_view.snapshot`` + ``orjson.dumps``);
- ``shared``: what it does now (streams/worker/agents_feed.py): one render per second, shared,
  built in chunks that yield to the loop;
- ``floor``: a two-byte body, the same pollers: the stall the machine and the HTTP handling
  cause alone (a loaded machine deschedules the process now and then).

Reports the render time of one full snapshot and, for each way, the median over the rounds of a
round's worst stall, all measured in the same run; ``make bench`` runs it as its ``pollers`` phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from streams.config import load
from streams.dev.harness import free_port
from streams.dev.local_pipeline import LocalPipeline
from streams.wallboard import agents as agent_view
from streams.worker.agents_feed import AgentsFeed

STATES = ("available", "busy", "acw", "away")
ROOT = Path(__file__).resolve().parents[1]


def pipeline(agents: int, now: float) -> LocalPipeline:
    """``agents`` agents in mixed states, each with a name and two queues, as a busy floor has."""
    s = load({}, max_agents=agents)
    p = LocalPipeline(s)
    records = []
    for i in range(agents):
        aid = f"agent-{i:05d}"
        event = {
            "event_id": f"{aid}-0",
            "type": "state",
            "agent_id": aid,
            "state": STATES[i % 4],
            "queues": [f"q{i % 40}", f"q{(i + 7) % 40}"],
            "name": f"Agent Number {i}",
            "ts": int((now - 600 + i / 10) * 1000),
        }
        records.append(p.record(s.agents_topic, event, key=aid))
    p.feed(records, now=now)
    return p


class LoopWatch:
    """How late a 1 ms timer wakes on this loop: the worst since ``reset``."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = False

    def reset(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while not self._stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - t - 0.001)

    def stop(self) -> None:
        self._stop = True


def poll_together(url: str, pollers: int) -> None:
    """``pollers`` GETs of ``url`` released at the same instant; returns when all have the body."""
    barrier = threading.Barrier(pollers)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})  # as browsers
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


async def serve_and_poll(p: LocalPipeline, pollers: int, rounds: int) -> dict[str, float]:
    s = p.settings
    feed = AgentsFeed(s, lambda: p.agent_store, lambda: "all", lambda: None)

    async def per_poll(request: Any) -> web.Response:
        body = agent_view.snapshot(p.agent_store, s, time.time(), "all", None, 0, None)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def shared(request: Any) -> web.Response:  # as streams/worker/pages.py serves it
        body, encoding = await feed.body(request.query, "gzip" in request.headers.get("Accept-Encoding", ""))
        headers = {"Content-Encoding": encoding} if encoding else {}
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def floor(request: Any) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/floor", floor)
    app.router.add_get("/per_poll", per_poll)
    app.router.add_get("/shared", shared)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    watch = LoopWatch()
    watcher = asyncio.ensure_future(watch.run())
    out: dict[str, float] = {}
    try:
        for way in ("floor", "per_poll", "shared"):
            worst = []
            for _ in range(rounds):
                await asyncio.sleep(1.1)  # a poll interval: the shared render is due again
                # the pollers in a process of their own: threads of this one would hold its GIL
                url = f"http://127.0.0.1:{port}/{way}"
                code = f"from benchmarks.pollers import poll_together; poll_together({url!r}, {pollers})"
                child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT)
                watch.reset()
                if await child.wait() != 0:
                    raise RuntimeError(f"the pollers of {url} failed")
                worst.append(watch.worst)
            out[way] = statistics.median(worst)  # a loaded machine's hiccups stay out of it
        out["shared_renders"] = feed.shared.renders
    finally:
        watch.stop()
        await watcher
        await runner.cleanup()
    return out


def measure(agents: int = 5000, pollers: int = 20, rounds: int = 5) -> dict[str, float]:
    """The figures, named as in benchmarks/results.json."""
    now = time.time()
    p = pipeline(agents, now)
    renders = []
    for _ in range(5):
        t = time.perf_counter()
        body = orjson.dumps(agent_view.snapshot(p.agent_store, p.settings, now, "all"))
        renders.append(time.perf_counter() - t)
    assert len(orjson.loads(body)["agents"]) == agents
    stalls = asyncio.run(serve_and_poll(p, pollers, rounds))
    return {
        "agents_json_bytes": len(body),
        "agents_render_ms": round(statistics.median(renders) * 1000, 1),
        "agents_stall_floor_ms": round(stalls["floor"] * 1000, 1),
        "agents_stall_per_poll_ms": round(stalls["per_poll"] * 1000, 1),
        "agents_stall_shared_ms": round(stalls["shared"] * 1000, 1),
        "agents_stall_ratio": round(stalls["shared"] / stalls["per_poll"], 3),
        "agents_shared_renders": int(stalls["shared_renders"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=5000)
    ap.add_argument("--pollers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(json.dumps(measure(args.agents, args.pollers, args.rounds), indent=1))


if __name__ == "__main__":
    main()
