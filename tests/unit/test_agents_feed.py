"""/api/agents: concurrent polls share one render, a page is cut from it exactly as a direct
snapshot would be, a bad parameter costs no render, and a render yields to the loop."""

from __future__ import annotations

import asyncio
import gzip

import orjson
import pytest

from streams.dev.local_pipeline import LocalPipeline
from streams.wallboard import agents as agent_view
from streams.worker.agents_feed import CHUNK, AgentsFeed, Body, SharedRender
from tests.unit.helpers import AGENTS, agent, at, feed, settings

N = 2 * CHUNK + 100  # three chunks
NOW = at("09:05:00")


def pipeline() -> LocalPipeline:
    p = LocalPipeline(settings())
    states = ("available", "busy", "acw", "away")
    events = [
        (AGENTS, agent(f"a{i:04d}", states[i % 4], [f"q{i % 7}"], at("09:00:00") + i / 10, name=f"Agent {i}"))
        for i in range(N)
    ]
    feed(p, events, now=NOW)
    return p


def agents_feed(p: LocalPipeline, owned=None) -> AgentsFeed:
    return AgentsFeed(p.settings, lambda: p.agent_store, lambda: "all", lambda: owned, clock=lambda: NOW)


def test_concurrent_polls_cause_one_render_and_get_the_same_bytes():
    p = pipeline()
    f = agents_feed(p)

    async def poll() -> list[Body]:
        return await asyncio.gather(*(f.body({}, gzip_ok=i % 2 == 0) for i in range(20)))

    bodies = asyncio.run(poll())
    assert f.shared.renders == 1
    assert set(bodies) == {bodies[0], bodies[1]}  # one render: its gzipped bytes and its plain ones
    (zipped, encoding), (plain, identity) = bodies[0], bodies[1]
    assert (encoding, identity) == ("gzip", None) and gzip.decompress(zipped) == plain
    assert plain == orjson.dumps(agent_view.snapshot(p.agent_store, p.settings, NOW, "all"))
    assert len(orjson.loads(plain)["agents"]) == N


@pytest.mark.parametrize("offset, limit", [(0, 1), (CHUNK - 3, 7), (N - 2, 50), (N + 5, 3), (17, None)])
def test_a_page_is_cut_from_the_shared_render_exactly_as_a_direct_snapshot(offset, limit):
    p = pipeline()
    f = agents_feed(p, owned=lambda a: not a.endswith("3"))  # this worker's share only
    query = {"offset": str(offset), **({"limit": str(limit)} if limit is not None else {})}

    async def both() -> tuple[Body, Body]:
        return await f.body({}), await f.body(query, gzip_ok=True)

    (whole, _), (page, encoding) = asyncio.run(both())
    assert encoding is None  # a page is small: built per request, not gzipped
    assert f.shared.renders == 1  # the page came from the render the first poll made
    direct = agent_view.snapshot(
        p.agent_store, p.settings, NOW, "all", lambda a: not a.endswith("3"), offset, limit
    )
    assert orjson.loads(page) == direct
    assert orjson.loads(whole)["total"] == direct["total"]


@pytest.mark.parametrize(
    "query",
    [{"offset": str(10**26)}, {"offset": "-1"}, {"limit": "0"}, {"limit": "1e3"}, {"offset": "9" * 5000}],
)
def test_a_bad_parameter_is_a_one_line_value_error_before_any_render(query):
    f = agents_feed(pipeline())
    with pytest.raises(ValueError, match=r"must be an integer from \d to 1000000000") as err:
        asyncio.run(f.body(query))
    assert "\n" not in str(err.value) and f.shared.renders == 0


def test_a_render_yields_to_the_loop_between_chunks():
    f = agents_feed(pipeline())
    turns_during_render = 0

    async def other_work() -> None:
        nonlocal turns_during_render
        await asyncio.sleep(0)  # let the render start
        while f.shared._task is not None:
            turns_during_render += 1
            await asyncio.sleep(0)

    async def run() -> None:
        await asyncio.gather(f.body({}), other_work())

    asyncio.run(run())
    assert turns_during_render >= N // CHUNK  # a turn at each chunk boundary


def test_a_render_is_reused_for_its_age_and_a_failed_one_is_retried():
    now = [0.0]
    calls: list[int] = []

    async def render() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("store moved")
        return len(calls)

    shared = SharedRender(render, max_age_s=1.0, clock=lambda: now[0])

    async def run() -> None:
        assert await shared.get() == 1
        now[0] = 0.9
        assert await shared.get() == 1  # still fresh: no render
        now[0] = 1.0
        with pytest.raises(RuntimeError):
            await shared.get()
        assert await shared.get() == 3  # the failure is not kept

    asyncio.run(run())
    assert shared.renders == 3


def test_a_poller_that_hangs_up_does_not_cancel_the_render_the_others_wait_for():
    started, release = asyncio.Event(), asyncio.Event()

    async def render() -> str:
        started.set()
        await release.wait()
        return "body"

    shared = SharedRender(render, max_age_s=1.0, clock=lambda: 0.0)

    async def run() -> None:
        first = asyncio.ensure_future(shared.get())
        await started.wait()
        second = asyncio.ensure_future(shared.get())
        await asyncio.sleep(0)
        first.cancel()  # the first client went away mid-render
        release.set()
        assert await second == "body"
        assert first.cancelled()

    asyncio.run(run())
    assert shared.renders == 1
