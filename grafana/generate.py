"""Grafana dashboards as code: ``python -m grafana.generate`` writes grafana/dashboards/*.json.

Built with grafana-foundation-sdk, pinned in pyproject.toml (the test extra) to the exact build
used here; tests/integration/test_grafana.py fails when the committed JSON differs from this output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from streams.metrics.catalog import KPIS

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="ccmon-prometheus")
QC = 'queue=~"$queue", channel=~"$channel"'


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


NEUTRAL = thresholds((None, "blue"))
#: the wallboard's rows, in order; their tiles are the catalog's panels (streams/metrics/catalog.py)
ROWS = ("Queues now", "Prediction", "Last 15 minutes", "Surveys today", "Customers", "Agents")


def tile(
    title: str,
    expr: str,
    unit: str,
    colours: dashboard.ThresholdsConfig,
    legend: str = "{{queue}} {{channel}}",
    width: int = 8,
    height: int = 7,
    decimals: int | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend))
        .unit(unit)
        .thresholds(colours)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .span(width)
        .height(height)
    )
    return panel.decimals(decimals) if decimals is not None else panel


def series(title: str, targets: list[tuple[str, str]], unit: str, width: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit).span(width).height(8)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def wallboard() -> dashboard.Dashboard:
    """For a TV across the room: no variables, big coloured tiles, every queue at once."""
    d = (
        dashboard.Dashboard("ccmon wallboard")
        .uid("ccmon-wallboard")
        .tags(["ccmon"])
        .refresh("5s")
        .time("now-15m", "now")
        .timezone("browser")
        .readonly()
    )
    for row in ROWS:
        d = d.with_row(dashboard.Row(row))
        for kpi, p in sorted(
            ((k, p) for k in KPIS for p in k.panels if p.row == row), key=lambda kp: kp[1].slot
        ):
            expr = p.expr or f'sum by (queue, channel) ({kpi.name}{{window="{p.window}"}})'
            d = d.with_panel(
                tile(p.title, expr, p.unit, thresholds(*p.steps), p.legend, p.width, p.height, p.decimals)
            )
    return d


def queue_detail() -> dashboard.Dashboard:
    """For supervisors: one queue and channel at a time, every KPI and window over time."""
    d = (
        dashboard.Dashboard("ccmon queue detail")
        .uid("ccmon-queue-detail")
        .tags(["ccmon"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    for name in ("queue", "channel"):
        d = d.with_variable(
            dashboard.QueryVariable(name)
            .label(name)
            .datasource(DATASOURCE)
            .query(f"label_values(ccmon_contacts_offered_total, {name})")
            .multi(False)
            .include_all(True)
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )
    windows = ("5m", "15m", "1h", "today")
    d = d.with_panel(
        series(
            "Offered per minute",
            [
                (f"sum(rate(ccmon_contacts_offered_total{{{QC}}}[5m])) * 60", "offered"),
                (f"sum(rate(ccmon_contacts_answered_total{{{QC}}}[5m])) * 60", "answered"),
                (f"sum(rate(ccmon_contacts_abandoned_total{{{QC}}}[5m])) * 60", "abandoned"),
                (f"sum(rate(ccmon_contacts_dequeued_total{{{QC}}}[5m])) * 60", "dequeued"),
            ],
            "none",
        )
    )
    d = d.with_panel(
        series(
            "Waiting now and oldest wait",
            [
                (f"sum(ccmon_queue_waiting_contacts{{{QC}}})", "waiting"),
                (f"max(ccmon_queue_oldest_wait_seconds{{{QC}}})", "oldest wait (s)"),
            ],
            "none",
        )
    )
    details = [(k, k.detail) for k in KPIS if k.detail is not None]
    for kpi, detail in sorted(details, key=lambda kd: kd[1].slot):  # the catalog's windowed KPIs
        d = d.with_panel(
            series(
                detail.title,
                [(f'sum by (window) ({kpi.name}{{{QC}, window="{w}"}})', w) for w in windows],
                detail.unit,
            )
        )
    d = d.with_panel(
        series(
            "Wait before answer (percentiles, 5m)",
            [
                (
                    f"histogram_quantile({q}, sum by (le) "
                    f'(rate(ccmon_wait_seconds_bucket{{{QC}, outcome="answered"}}[5m])))',
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.9, 0.99)
            ],
            "s",
        )
    )
    d = d.with_panel(
        series(
            "Handle time (percentiles, 15m)",
            [
                (
                    f"histogram_quantile({q}, sum by (le) (rate(ccmon_handle_seconds_bucket{{{QC}}}[15m])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.9)
            ],
            "s",
        )
    )
    d = d.with_panel(
        series(
            "Agents required vs staffed",
            [
                (f"sum(ccmon_agents_required{{{QC}}})", "required"),
                ('sum(ccmon_agents{queue=~"$queue", state=~"available|busy|acw"})', "staffed"),
            ],
            "none",
        )
    )
    d = d.with_panel(
        series(
            "Dequeued per minute by reason (left the queue without an agent, not hung up)",
            [(f"sum by (reason) (rate(ccmon_contacts_dequeued_total{{{QC}}}[5m])) * 60", "{{reason}}")],
            "none",
        )
    )
    d = d.with_panel(
        series(
            "Missed offers per minute (rang out or rejected)",
            [(f"sum(rate(ccmon_offers_missed_total{{{QC}}}[5m])) * 60", "missed offers")],
            "none",
        )
    )
    d = d.with_panel(
        series(
            "CSAT and FCR (1h)",
            [
                (f'sum(ccmon_csat_ratio{{{QC}, window="1h"}})', "CSAT"),
                (f'sum(ccmon_fcr_ratio{{{QC}, window="1h"}})', "FCR"),
            ],
            "percentunit",
        )
    )
    d = d.with_panel(series("NPS (1h)", [(f'sum(ccmon_nps_score{{{QC}, window="1h"}})', "NPS")], "none"))
    d = d.with_panel(
        series(
            "CES (1-7, 7 = very easy)",
            [(f'avg by (window) (ccmon_ces_score{{{QC}, window="{w}"}})', w) for w in ("1h", "today")],
            "none",
        )
    )
    return d


def pipeline() -> dashboard.Dashboard:
    """For ops: is data flowing, is it clean, is it fresh, are the workers up."""
    d = (
        dashboard.Dashboard("ccmon pipeline health")
        .uid("ccmon-pipeline")
        .tags(["ccmon"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
    )
    d = d.with_panel(
        series(
            "Events per second by result",
            [("sum by (result) (rate(ccmon_events_total[1m]))", "{{result}}")],
            "reqps",
        )
    )
    d = d.with_panel(
        series(
            "Dead letters per second by reason",
            [("sum by (reason) (rate(ccmon_dead_letters_total[5m]))", "{{reason}}")],
            "reqps",
        )
    )
    d = d.with_panel(
        series(
            "Event lag p50 / p95 (event time to processing)",
            [
                (
                    f"histogram_quantile({q}, sum by (le, topic) (rate(ccmon_event_lag_seconds_bucket[5m])))",
                    f"p{int(q * 100)} {{{{topic}}}}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
        )
    )
    d = d.with_panel(
        series(
            "Consumer lag (messages behind)",
            [("sum by (topic) (ccmon_consumer_lag_messages)", "{{topic}}")],
            "none",
        )
    )
    d = d.with_panel(series("Workers up", [('up{job="ccmon"}', "{{instance}}")], "none"))
    d = d.with_panel(
        series("Scrape duration", [('scrape_duration_seconds{job="ccmon"}', "{{instance}}")], "s")
    )
    d = d.with_panel(
        series(
            "Queues exported per worker",
            [("count by (instance) (ccmon_contacts_offered_total)", "{{instance}}")],
            "none",
        )
    )
    return d


#: agent states → (code in the state timeline, colour): the agents page's colours
AGENT_STATE_CODES = {
    "available": (1, "green"),
    "busy": (2, "blue"),
    "acw": (3, "purple"),
    "away": (4, "orange"),
    "offline": (5, "text"),
}
AG = 'agent=~"$agent"'


def agents() -> dashboard.Dashboard:
    """For supervisors and workforce planners: per agent, from the per-agent series, which a worker
    exports only with CCMON_AGENT_METRICS=true (docs/configuration.md)."""
    d = (
        dashboard.Dashboard("ccmon agents")
        .uid("ccmon-agents")
        .tags(["ccmon"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    d = d.with_variable(
        dashboard.QueryVariable("agent")
        .label("agent")
        .datasource(DATASOURCE)
        .query("label_values(ccmon_agent_state, agent)")
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )
    # one number per agent and moment: the code of its state (ccmon_agent_state is 1 for exactly one)
    code = " + ".join(
        f'{n} * max by (agent) (ccmon_agent_state{{{AG}, state="{s}"}})'
        for s, (n, _) in AGENT_STATE_CODES.items()
    )
    timeline = (
        statetimeline.Panel()
        .title("State per agent")
        .datasource(DATASOURCE)
        .with_target(query(code, "{{agent}}"))
        .span(24)
        .height(12)
        .mappings(
            [
                dm.ValueMap(
                    options={
                        str(n): dm.ValueMappingResult(text=s, color=c, index=n - 1)
                        for s, (n, c) in AGENT_STATE_CODES.items()
                    }
                )
            ]
        )
        .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(NEUTRAL)
        .merge_values(True)
        .show_value(cm.VisibilityMode.NEVER)
    )
    d = d.with_panel(timeline)
    d = d.with_panel(
        series("Agents per state", [("sum by (state) (ccmon_agent_state)", "{{state}}")], "none")
    )
    busy = f'sum by (agent) (increase(ccmon_agent_state_seconds_total{{{AG}, state=~"busy|acw"}}[1h]))'
    logged_in = f'sum by (agent) (increase(ccmon_agent_state_seconds_total{{{AG}, state!="offline"}}[1h]))'
    d = d.with_panel(
        series(
            "Occupancy (busy + ACW / logged in, last hour)",
            [(f"{busy} / ({logged_in} > 0)", "{{agent}}")],
            "percentunit",
        )
    )
    d = d.with_panel(
        series(
            "AHT by agent (last hour)",
            [
                (
                    f"sum by (agent) (increase(ccmon_agent_handle_seconds_total{{{AG}}}[1h]))"
                    f" / (sum by (agent) (increase(ccmon_agent_handled_total{{{AG}}}[1h])) > 0)",
                    "{{agent}}",
                )
            ],
            "s",
        )
    )
    d = d.with_panel(
        series(
            "Handled per agent (last hour)",
            [(f"round(sum by (agent) (increase(ccmon_agent_handled_total{{{AG}}}[1h])))", "{{agent}}")],
            "none",
        )
    )
    d = d.with_panel(
        series(
            "Missed offers per agent (last hour)",
            [(f"round(sum by (agent) (increase(ccmon_agent_offers_missed_total{{{AG}}}[1h])))", "{{agent}}")],
            "none",
        )
    )
    return d


DASHBOARDS = {
    "wallboard.json": wallboard,
    "queue-detail.json": queue_detail,
    "pipeline.json": pipeline,
    "agents.json": agents,
}


def render(build) -> str:
    return (
        json.dumps(
            json.loads(JSONEncoder(sort_keys=True, indent=2).encode(build().build())),
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
