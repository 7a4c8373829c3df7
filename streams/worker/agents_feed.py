"""/api/agents at thousands of agents: one render shared by every poller, never one per request.

At 5,000 agents the body is about 2 MB and building it costs a few hundred milliseconds of the
event loop, the loop stage 2 and the consumer run on; every open agents page polls it once a
second, so ten pages rendered it ten times a second and stalled the loop for most of a second.
Now a render is reused for ``MAX_AGE_S`` (the page's poll interval), at most one is in flight
(the others await it), and it yields to the loop every ``CHUNK`` rows, so neither the number
of pollers nor the number of agents sets the longest stall (``make bench``, docs/performance.md).
A page with ``offset``/``limit`` is cut from the same render.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from streams.config import Settings
from streams.core.agentview import AgentStore
from streams.wallboard import agents as agent_view

__all__ = ["CHUNK", "MAX_AGE_S", "AgentsFeed", "Body", "SharedRender"]

#: how long a render is served: the agents page polls once a second (pages.js POLL_MS)
MAX_AGE_S = 1.0
#: rows built between two yields to the event loop
CHUNK = 250

T = TypeVar("T")


class SharedRender(Generic[T]):
    """``render()`` at most once per ``max_age_s`` and at most one at a time: a caller during a
    render awaits that render's result. A render that fails fails its waiters; the next call
    starts a new one. A waiter that goes away (the client hung up) does not cancel it."""

    def __init__(
        self,
        render: Callable[[], Awaitable[T]],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render, self.max_age_s, self._clock = render, max_age_s, clock
        self._value: T | None = None
        self._at = 0.0
        self._task: asyncio.Future[T] | None = None
        self.renders = 0  #: renders started (tests and the benchmark read it)

    async def get(self) -> T:
        if self._value is not None and self._clock() - self._at < self.max_age_s:
            return self._value
        if self._task is None:
            self.renders += 1
            self._task = asyncio.ensure_future(self._run())
            # its waiters see a failure; with all of them gone, it is still retrieved (no warning)
            self._task.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await asyncio.shield(self._task)

    async def _run(self) -> T:
        started = self._clock()
        try:
            value = await self._render()
            self._value, self._at = value, started
            return value
        finally:
            self._task = None


@dataclass(frozen=True)
class Rendered:
    now: float
    scope: str
    rows: list[dict[str, Any]]  #: every agent's row, in agent id order
    body: bytes  #: the whole list's JSON, what the page polls
    gzipped: bytes  #: the same, gzipped once for every browser (~2 MB -> ~0.1 MB at 5,000 agents)


#: a body and its Content-Encoding (None: identity)
Body = tuple[bytes, str | None]


class AgentsFeed:
    """The bodies of /api/agents for one worker: its agent store, scope and agent filter are
    read at each render (a rebalance changes them)."""

    def __init__(
        self,
        settings: Settings,
        store: Callable[[], AgentStore],
        scope: Callable[[], str],
        owned: Callable[[], Callable[[str], bool] | None],
        clock: Callable[[], float] = time.time,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.settings, self._store, self._scope, self._owned, self._clock = (
            settings,
            store,
            scope,
            owned,
            clock,
        )
        self.shared: SharedRender[Rendered] = SharedRender(self._render, max_age_s)

    async def _render(self) -> Rendered:
        now, scope, store, s = self._clock(), self._scope(), self._store(), self.settings
        ids = store.agent_ids(self._owned())
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), CHUNK):
            if start:
                await asyncio.sleep(0)  # stage 2 and the other requests run between chunks
            for agent_id in ids[start : start + CHUNK]:
                r = store.row(agent_id, now)  # None: the agent expired during a yield
                if r is not None:
                    rows.append(agent_view.row_json(r, now, s))
        body = orjson.dumps(agent_view.envelope(s, now, scope, rows, len(rows), 0, None))
        # sending 2 MB to each of 20 pollers stalls the loop longer than the render (make bench);
        # zlib runs off the loop, without the GIL
        gzipped = await asyncio.to_thread(gzip.compress, body, 1, mtime=0)
        return Rendered(now, scope, rows, body, gzipped)

    async def body(self, query: Mapping[str, str], gzip_ok: bool = False) -> Body:
        """The JSON for ``query`` (``offset``/``limit``, docs/wallboard.md), gzipped for a client
        that takes it; a ValueError with a one-line reason for a bad parameter, before any work."""
        offset, limit = agent_view.page_params(query)
        r = await self.shared.get()
        if offset == 0 and limit is None:
            return (r.gzipped, "gzip") if gzip_ok else (r.body, None)
        rows = r.rows[offset:] if limit is None else r.rows[offset : offset + limit]
        page = agent_view.envelope(self.settings, r.now, r.scope, rows, len(r.rows), offset, limit)
        return orjson.dumps(page), None
