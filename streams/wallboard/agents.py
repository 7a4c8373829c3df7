"""The agent view on the worker: /api/agents (one JSON snapshot per poll) and the /agents page,
read from the same per-agent records (streams/core/agentview.py) at request time as the optional
per-agent series of /metrics (streams/metrics/kpi_exposition.py), so the page and /metrics agree."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from streams.config import Settings
from streams.core.agentview import AgentRow, AgentStore
from streams.core.events import AGENT_STATES


def over_limit(row: AgentRow, now: float, settings: Settings) -> bool:
    """In ACW or away for longer than its configured limit (the page highlights it)."""
    if row.since is None:
        return False
    limit = {"acw": settings.web.agent_acw_limit_s, "away": settings.web.agent_away_limit_s}.get(
        row.state or ""
    )
    return limit is not None and now - row.since > limit


#: the largest offset or limit taken: far above any agent cap, far below what JSON's integers hold
MAX_COUNT = 1_000_000_000


def _count(query: Mapping[str, str], name: str, least: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not least <= int(raw) <= MAX_COUNT:
        raise ValueError(f"{name} must be an integer from {least} to {MAX_COUNT}, not {raw[:32]!r}")
    return int(raw)


def page_params(query: Mapping[str, str]) -> tuple[int, int | None]:
    """(offset, limit) of ``/api/agents?offset=N&limit=M``: both optional, offset 0 and every
    agent by default (the page shows them all; the agent cap bounds them); a ValueError with a
    one-line reason for anything but a non-negative offset and a positive limit."""
    return _count(query, "offset", 0) or 0, _count(query, "limit", 1)


def snapshot(
    store: AgentStore,
    settings: Settings,
    now: float,
    scope: str,
    owned: Callable[[str], bool] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """One poll's rows, in agent id order, ``limit`` of them from ``offset`` (all by default):
    ``total`` counts every agent shown here and ``next_offset`` is where the next page starts
    (None after the last). Only the rows of the page are computed."""
    ids = store.agent_ids(owned)
    page = ids[offset:] if limit is None else ids[offset : offset + limit]
    rows = [row_json(r, now, settings) for r in (store.row(a, now) for a in page) if r is not None]
    return envelope(settings, now, scope, rows, len(ids), offset, limit)


def row_json(r: AgentRow, now: float, settings: Settings) -> dict[str, Any]:
    """One agent's row of /api/agents."""
    return {
        "agent": r.agent,
        "name": r.name,
        "state": r.state,
        "reason": r.reason,
        "since": r.since,
        "state_s": max(0.0, now - r.since) if r.since is not None else None,
        "over_limit": over_limit(r, now, settings),
        "queues": r.queues,
        "contact": r.contacts[0] if r.contacts else None,
        "contacts_in_hand": len(r.contacts),
        "handled_today": r.handled_today,
        "handle_s_today": r.handle_s_today,
        "aht_s_today": r.aht_today,
        "occupancy_today": r.occupancy_today,
        "missed_today": r.missed_today,
        "state_s_today": r.state_s_today,
    }


def envelope(
    settings: Settings,
    now: float,
    scope: str,
    rows: list[dict[str, Any]],
    total: int,
    offset: int,
    limit: int | None,
) -> dict[str, Any]:
    """The body of /api/agents around the page's ``rows`` of ``total`` agents from ``offset``."""
    end = min(total, offset + limit) if limit is not None else total
    return {
        "generated_at": now,
        "scope": scope,
        "agents": rows,
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": end if end < total else None,
        "timezone": settings.timezone,
        "limits": {"acw_s": settings.web.agent_acw_limit_s, "away_s": settings.web.agent_away_limit_s},
        "states": list(AGENT_STATES),
    }


def page() -> bytes:
    return resources.files("streams.wallboard").joinpath("agents.html").read_bytes()
