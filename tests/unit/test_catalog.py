"""The KPI catalog (streams/metrics/catalog.py) is the one declaration of each KPI: /metrics, the
wallboard's JSON and page, the Grafana dashboards, the mechanical recording rules and the docs'
metric tables are built from it or agree with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from grafana.generate import DASHBOARDS, render
from streams.dev.local_pipeline import LocalPipeline
from streams.metrics import catalog
from streams.metrics.kpi_exposition import KpiExposition
from streams.wallboard import queues as queue_view
from tests.unit.helpers import (
    AGENTS,
    CALLS,
    CHATS,
    SCENARIO,
    Clock,
    agent,
    at,
    ev,
    feed,
    sample,
    samples,
    settings,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = at("10:10:00")
CHAT = [
    (CHATS, ev("offered", "h1", at("10:00:00"), queue="sales")),
    (CHATS, ev("answered", "h1", at("10:00:05"), agent_id="a1")),
    (CHATS, ev("responded", "h1", at("10:00:30"))),
    (CHATS, ev("ended", "h1", at("10:04:00"))),
    (CHATS, ev("wrapup_ended", "h1", at("10:04:20"))),
    (CHATS, ev("survey", "h1", at("10:05:00"), csat=5, nps=9, resolved=True, ces=6)),
]


#: returning customers (R = 2 min, W = 1 min, lateness 30 s, so that all is decided by 10:08):
#: A abandons and is lost (at risk), B abandons and is recovered by a repeat that is handled and
#: resolved on first contact, C's case is resolved, D's abandon is still to call back
CUSTOMERS = [
    (CALLS, ev("offered", "k1", at("10:00:00"), queue="sales", customer="A")),
    (CALLS, ev("abandoned", "k1", at("10:00:10"))),
    (CALLS, ev("offered", "k2", at("10:00:20"), queue="sales", customer="B")),
    (CALLS, ev("abandoned", "k2", at("10:00:25"))),
    (CALLS, ev("offered", "k3", at("10:00:40"), queue="sales", customer="B")),
    (CALLS, ev("answered", "k3", at("10:00:45"), agent_id="a2")),
    (CALLS, ev("ended", "k3", at("10:01:00"))),
    (CALLS, ev("wrapup_ended", "k3", at("10:01:01"))),
    (CALLS, ev("offered", "k4", at("10:05:00"), queue="sales", customer="C", case_id="T9")),
    (CALLS, ev("answered", "k4", at("10:05:05"), agent_id="a2")),
    (CALLS, ev("resolved", "k4", at("10:06:00"))),
    (CALLS, ev("offered", "k5", at("10:08:00"), queue="sales", customer="D")),
    (CALLS, ev("abandoned", "k5", at("10:08:10"))),
    # both topics' watermarks move past the last customer fact, so that the customer clock reaches it
    (CALLS, ev("offered", "k8", at("10:09:00"), queue="sales")),
    (CHATS, ev("offered", "h8", at("10:09:00"), queue="sales")),
]
CUSTOMER_SETTINGS = {
    "customer_key": b"catalog-test-key-0123456789",
    "repeat_window_s": 120.0,
    "recovery_window_s": 60.0,
    "lateness_s": 30.0,
    "partitions": 1,  # one customer clock: every customer fact moves it
}


def _pipeline() -> LocalPipeline:
    p = LocalPipeline(settings(**CUSTOMER_SETTINGS))
    agents = [(AGENTS, agent("a1", "busy", ["sales"], at("10:00:00")))]
    # in time order: the customers' calls are not late behind the scenario's (a late customer
    # fact is applied after what its partition's watermark passed: streams/core/customers.py)
    feed(p, sorted(SCENARIO + CHAT + agents + CUSTOMERS, key=lambda row: row[1]["ts"]), NOW)
    return p


def test_metrics_has_exactly_the_catalog_families_in_its_order_with_its_type_and_help():
    text = KpiExposition(lambda: _pipeline().store, Clock(NOW)).render()
    helps = re.findall(r"^# HELP (\S+) (.*)$", text, re.M)
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert helps == [(k.name, k.help) for k in catalog.KPIS]
    assert types == [(k.name, k.type) for k in catalog.KPIS]
    # every family has samples in this scenario, with the catalog's label names
    m = samples(text)
    for k in catalog.KPIS:
        names = {labels for (name, labels) in m if name.removesuffix("_bucket") == k.name or name == k.name}
        names |= {labels for (name, labels) in m if re.fullmatch(f"{k.name}_(sum|count)", name)}
        assert names, k.name
        assert {tuple(n for n, _ in labels if n != "le") for labels in names} == {tuple(sorted(k.labels))}, (
            k.name
        )


def test_windowed_kpis_are_their_formula_in_every_window_and_absent_when_undefined():
    p = _pipeline()
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    for queue, channel in p.store.series():
        view = p.store.view(queue, channel, NOW)
        for k in catalog.windowed():
            assert k.formula is not None
            for window, sums in view.windows.items():
                # a customer KPI only where the contacts carry a customer (sales voice here)
                want = k.formula(sums) if view.customers or not k.customer else None
                got = sample(m, k.name, queue=queue, channel=channel, window=window)
                assert got == want, (k.name, queue, channel, window)
                if want is None:
                    assert k.absent_when_undefined, k.name


def test_the_wallboard_json_and_page_take_every_cell_from_the_catalog():
    p = _pipeline()
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    data = queue_view.snapshot(p.store, p.settings, NOW, "all")
    assert data["fields"] == catalog.wallboard_fields()
    assert [f["id"] for f in data["fields"]] == [t.field for _, t in catalog.tiles()]
    assert len({t.slot for _, t in catalog.tiles()}) == len(catalog.tiles())  # one place each
    for row in data["series"]:
        q = {"queue": row["queue"], "channel": row["channel"]}
        for f in data["fields"]:
            kpi = catalog.by_name(f["metric"])
            if kpi.windowed or kpi.type == "gauge" and kpi.name != "ccmon_agents":
                labels = {**q, "window": f["window"]} if f["window"] else q
                if "horizon" in kpi.labels:  # the wallboard shows the interval's projection
                    labels = {**labels, "horizon": "interval"}
                if kpi.labels == ("queue",):  # a per-queue gauge: both channels' cards show it
                    labels = {"queue": row["queue"]}
                assert row[f["id"]] == sample(m, kpi.name, **labels), (f["id"], q)
    page = queue_view.page().decode()
    for _, t in catalog.tiles():  # the page keeps no list of its own
        assert f'"{t.field}"' not in page and f"s.{t.field}" not in page and f'"{t.label}"' not in page, (
            t.field
        )
    assert "data.fields" in page


def test_first_response_shows_on_chat_cards_only():
    fields = {f["id"]: f for f in catalog.wallboard_fields()}
    assert fields["first_response_seconds_15m"]["channels"] == ["chat"]
    data = queue_view.snapshot(_pipeline().store, settings(**CUSTOMER_SETTINGS), NOW, "all")
    chat = next(r for r in data["series"] if r["channel"] == "chat")
    assert chat["first_response_seconds_15m"] == 30.0  # offered 10:00:00, responded 10:00:30


def test_the_dashboards_are_built_from_the_catalog_and_query_every_kpi():
    dashboards = {name: json.loads(render(build)) for name, build in DASHBOARDS.items()}
    wall = dashboards["wallboard.json"]
    tiles = [
        (p["title"], p["targets"][0]["expr"], p["fieldConfig"]["defaults"]["unit"])
        for p in wall["panels"]
        if p["type"] == "stat"
    ]
    declared = [
        (p.title, p.expr or f'sum by (queue, channel) ({k.name}{{window="{p.window}"}})', p.unit)
        for k in catalog.KPIS
        for p in k.panels
    ]
    assert sorted(tiles) == sorted(declared)
    detail = {p["title"] for p in dashboards["queue-detail.json"]["panels"]}
    assert {k.detail.title for k in catalog.KPIS if k.detail} <= detail
    details = [p for p in dashboards["queue-detail.json"]["panels"] if p["title"] == "First response time"]
    assert [t["expr"] for t in details[0]["targets"]] == [
        "sum by (window) (ccmon_first_response_seconds_avg"
        f'{{queue=~"$queue", channel=~"$channel", window="{w}"}})'
        for w in ("5m", "15m", "1h", "today")
    ]


def test_the_recording_rules_that_follow_mechanically_are_in_the_rule_file():
    rules = yaml.safe_load((ROOT / "streams/resources/prometheus/rules/ccmon.yml").read_text())
    records = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    wanted = catalog.recording_rules()
    assert wanted and {name: records.get(name) for name in wanted} == wanted


def test_the_metric_tables_of_readme_and_kpis_md_are_the_catalogs():
    for name in catalog.DOCS:
        text = (ROOT / name).read_text()
        assert catalog.with_table(text) == text, f"{name}: run python -m streams.metrics.catalog"
        assert catalog.doc_table() in text
    assert all(f"`{k.name}`" in catalog.doc_table() for k in catalog.KPIS)


def test_unrelated_calls_leave_first_response_out_of_voice_series():
    p = LocalPipeline(settings())
    feed(p, SCENARIO + CHAT, NOW)
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    assert sample(m, "ccmon_first_response_seconds_count", queue="sales", channel="voice") is None
    assert sample(m, "ccmon_first_response_seconds_count", queue="sales", channel="chat") == 1
    # a chat series with no first response yet has the histogram at 0 (rate() sees the first one)
    feed(p, [(CHATS, ev("offered", "h2", at("10:09:00"), queue="web"))], NOW)
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    assert sample(m, "ccmon_first_response_seconds_count", queue="web", channel="chat") == 0
    assert sample(m, "ccmon_first_response_seconds_avg", queue="web", channel="chat", window="15m") is None
    # a voice contact with a first response brings the voice histogram
    feed(
        p,
        [
            (CALLS, ev("offered", "v9", at("10:09:00"), queue="sales")),
            (CALLS, ev("responded", "v9", at("10:09:04"))),
        ],
        NOW,
    )
    m = samples(KpiExposition(lambda: p.store, Clock(NOW)).render())
    assert sample(m, "ccmon_first_response_seconds_sum", queue="sales", channel="voice") == 4.0
