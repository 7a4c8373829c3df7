"""Event builders for hand-written scenarios."""

from __future__ import annotations

from datetime import datetime
from itertools import count
from typing import Any

from streams.config import Settings, load

_ids = count(1)
CALLS, CHATS, AGENTS = "cc.calls", "cc.chats", "cc.agents"


def at(hhmmss: str, day: str = "2026-11-23") -> float:
    """Epoch seconds of a UTC wall time, e.g. at("10:00:20") or at("10:02:04.999")."""
    return datetime.fromisoformat(f"{day}T{hhmmss}+00:00").timestamp()


def ev(etype: str, cid: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": fields.pop("event_id", f"e{next(_ids)}"), "type": etype, "contact_id": cid,
            "ts": int(round(ts * 1000)), **fields}


def agent(aid: str, state: str, queues: list[str], ts: float, **fields: Any) -> dict[str, Any]:
    return {"event_id": fields.pop("event_id", f"a{next(_ids)}"), "type": "state", "agent_id": aid, "state": state,
            "queues": queues, "ts": int(round(ts * 1000)), **fields}


def settings(**overrides: Any) -> Settings:
    return load({}, **overrides)
