"""The built-in wallboard's data: one JSON snapshot per poll, from the same state and formulas
as /metrics, so the page shows exactly the numbers Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Collection
from importlib import resources
from typing import Any

from streams.config import Settings
from streams.core import kpis
from streams.core.events import AGENT_STATES, STAFFED_STATES
from streams.core.queues import QueueStore
from streams.metrics.kpi_exposition import owner_filter

#: rates and counts on the wallboard are over this window; service level and surveys are also
#: shown for today
WINDOW = "15m"


def snapshot(
    store: QueueStore, settings: Settings, now: float, scope: str, owned: Collection[int] | None = None
) -> dict[str, Any]:
    """``owned``: the facts partitions this worker exports now, as on /metrics (None: all it holds)."""
    mine = owner_filter(owned, settings.partitions)
    agents = dict(store.agents())
    series = []
    for queue, channel in store.series():
        if not mine(queue):
            continue
        view = store.view(queue, channel, now)
        win, today = view.windows[WINDOW], view.windows["today"]
        th = settings.thresholds(queue)
        counts = agents.get(queue, {})
        series.append(
            {
                "queue": queue,
                "channel": channel,
                "waiting": view.waiting,
                "oldest_wait_s": view.oldest_wait_s,
                "service_level_today": kpis.service_level(today),
                "service_level_15m": kpis.service_level(win),
                "abandon_ratio_15m": kpis.abandon_ratio(win),
                "dequeued_15m": win[kpis.DEQUEUED],
                "missed_15m": win[kpis.MISSED],
                "asa_seconds_15m": kpis.asa(win),
                "aht_seconds_15m": kpis.aht(win),
                "offered_today": today[kpis.OFFERED],
                "csat_today": kpis.csat(today),
                "nps_today": kpis.nps(today),
                "fcr_today": kpis.fcr(today),
                "ces_today": kpis.ces(today),
                "agents": counts,
                "agents_required": view.agents_required,
                "staffed": sum(counts.get(s, 0) for s in STAFFED_STATES),
                "sl_target": th.sl_target,
                "sl_threshold_s": th.sl_threshold_s,
            }
        )
    return {
        "generated_at": now,
        "scope": scope,
        "series": series,
        "states": list(AGENT_STATES),  #: the agent counts' order: the page has no list of its own
        "timezone": settings.timezone,
        "window": WINDOW,
    }


def page() -> bytes:
    return resources.files("streams.wallboard").joinpath("wallboard.html").read_bytes()
