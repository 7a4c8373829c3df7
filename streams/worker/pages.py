"""The worker's HTTP pages: /metrics, /health, the wallboard and the agents page with their JSON."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from streams.packaged import core_build
from streams.wallboard import SHARED, shared
from streams.wallboard import agents as agent_view
from streams.wallboard import callbacks as callback_view
from streams.wallboard import queues as queue_view
from streams.worker.agents_feed import AgentsFeed, Body

if TYPE_CHECKING:
    from streams.worker.app import Pipeline

__all__ = ["METRICS_CONTENT_TYPE", "add_pages"]

#: the classic text exposition format, which every Prometheus 2.x parses
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
JSON = {"Content-Type": "application/json", "Cache-Control": "no-store", "Vary": "Accept-Encoding"}


def add_pages(p: Pipeline) -> None:
    app, s, own, state = p.app, p.settings, p.ownership, p.state
    core = core_build()  # compiled or interpreted: which one this process imported

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        agents = (state.agent_store(), own.agent_filter()) if s.web.agent_metrics else None  # off by default
        body = p.kpi_text.page(p.registry, agents, request.query.getall("name[]", ()))
        return web.bytes(body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def wallboard_data(query: Mapping[str, str], gzip_ok: bool) -> Body:
        body = queue_view.snapshot(state.store(), s, time.time(), own.scope("queue"), own.owned_partitions())
        return orjson.dumps(body), None

    async def callbacks_data(query: Mapping[str, str], gzip_ok: bool) -> Body:
        body = callback_view.snapshot(
            state.store(), s, time.time(), own.scope("queue"), own.owned_partitions()
        )
        return orjson.dumps(body), None

    # ?offset=&limit= (docs/wallboard.md), all by default; one render shared by every poller
    agents = AgentsFeed(s, state.agent_store, lambda: own.scope("agent"), own.agent_filter)

    # the two supervisor pages: static HTML, and the JSON of this worker's share it polls
    _add_page(app, "/wallboard", queue_view.page, wallboard_data)
    _add_page(app, "/agents", agent_view.page, agents.body)
    _add_page(app, "/callbacks", callback_view.page, callbacks_data)
    for name in SHARED:  # the script and style both pages share
        _add_file(app, name)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        healthy = own.ready and p.broker.up is not False
        body = {
            "ready": own.ready,
            "broker": {None: "unknown", True: "up", False: "down"}[p.broker.up],
            "queues": p.owned_queue_count(),
            "core": core,
        }
        return web.json(body, status=200 if healthy else 503)


def _add_page(
    app: Any,
    path: str,
    html: Callable[[], bytes],
    data: Callable[[Mapping[str, str], bool], Awaitable[Body]],
) -> None:
    """``path`` serves the page, ``/api{path}`` its JSON from the request's query; a bad query
    parameter (``data`` raises ValueError) is a 400 with a one-line error."""

    @app.page(path, name=path.strip("/"))
    async def page(web: Any, request: Any) -> Any:
        return web.bytes(html(), headers=HTML)

    @app.page(f"/api{path}", name=f"api-{path.strip('/')}")
    async def page_data(web: Any, request: Any) -> Any:
        try:
            body, encoding = await data(request.query, "gzip" in request.headers.get("Accept-Encoding", ""))
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.bytes(body, headers={**JSON, "Content-Encoding": encoding} if encoding else JSON)


def _add_file(app: Any, name: str) -> None:
    headers = {"Content-Type": SHARED[name], "Cache-Control": "no-store"}

    @app.page(f"/{name}", name=name.replace(".", "-"))
    async def file(web: Any, request: Any) -> Any:
        return web.bytes(shared(name), headers=headers)
