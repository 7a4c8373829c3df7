"""The built-in wallboard's data: one JSON snapshot per poll, from the same state and formulas
as /metrics, so the page shows exactly the numbers Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Collection
from importlib import resources
from typing import Any

from streams.config import Settings
from streams.core.events import AGENT_STATES, STAFFED_STATES
from streams.core.predict import interval_bounds
from streams.core.queues import QueueStore
from streams.metrics import catalog
from streams.owned import owner_filter

#: rates and counts on the wallboard are over this window; service level and surveys are also
#: shown for today
WINDOW = "15m"
TILES = catalog.tiles()
FIELDS = catalog.wallboard_fields()


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
        th = settings.thresholds(queue)
        counts = agents.get(queue, {})
        row: dict[str, Any] = {
            "queue": queue,
            "channel": channel,
            "agents": counts,
            "staffed": sum(counts.get(s, 0) for s in STAFFED_STATES),
            "sl_target": th.sl_target,
            "sl_threshold_s": th.sl_threshold_s,
        }
        for kpi, tile in TILES:  # every cell the catalog declares, by its formula
            if kpi.customer and not view.customers and tile.attr is None:
                row[tile.field] = None  # no customer in this series: no cell, as on /metrics
            elif tile.window is not None:
                row[tile.field] = kpi.value(view.windows[tile.window])
            elif tile.attr is not None and tile.attr not in row:
                row[tile.field] = getattr(view, tile.attr)
        # the chart: today's service level by interval ([start, ratio or null: nothing counted]),
        # the current interval's projection and the time to breach (the cells' values too)
        row["chart"] = {
            "intervals": [[start, sl] for start, sl in store.intervals_today(queue, channel, now)],
            "projected": view.sl_projected_interval,
            "breach_s": view.breach_s,
        }
        series.append(row)
    _, _, day_start, day_end = interval_bounds(now, store.zone, settings.kpi.sl_interval_s)
    return {
        "generated_at": now,
        "scope": scope,
        "series": series,
        "states": list(AGENT_STATES),  #: the agent counts' order: the page has no list of its own
        "timezone": settings.timezone,
        "window": WINDOW,
        "fields": FIELDS,  #: how to show each cell: the page has no list of its own
        "interval_s": settings.kpi.sl_interval_s,
        "day": [day_start, day_end],  #: today in the contact center's time zone: the chart's x axis
    }


def page() -> bytes:
    return resources.files("streams.wallboard").joinpath("wallboard.html").read_bytes()
