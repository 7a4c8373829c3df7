"""Grafana as code, without a server: the committed dashboards are the generator's output and keep
the contract the provisioning and the runbooks rely on (data source, uids, variables). That every
query in them returns data is tests/integration/test_grafana.py, against a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from grafana.generate import DASHBOARDS, OUT, render

ROOT = Path(__file__).resolve().parents[2]


def dashboards() -> dict[str, dict]:
    return {name: json.loads((OUT / name).read_text()) for name in DASHBOARDS}


def test_committed_dashboards_equal_the_generator_output():
    for name, build in DASHBOARDS.items():
        assert (OUT / name).read_text() == render(build), f"{name} is stale: run python -m grafana.generate"


def test_dashboard_contract():
    ds_uid = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ][0]["uid"]
    uids = set()
    for name, d in dashboards().items():
        uids.add(d["uid"])
        for panel in d["panels"]:
            if panel.get("type") != "row":
                assert panel["datasource"]["uid"] == ds_uid, (name, panel["title"])
    assert uids == {"ccmon-wallboard", "ccmon-queue-detail", "ccmon-pipeline", "ccmon-agents"}
    wall = dashboards()["wallboard.json"]
    assert wall["refresh"] == "5s" and not wall.get("templating", {}).get("list")
    assert {v["name"] for v in dashboards()["queue-detail.json"]["templating"]["list"]} == {
        "queue",
        "channel",
    }
    agents = dashboards()["agents.json"]
    assert {v["name"] for v in agents["templating"]["list"]} == {"agent"}
    assert agents["panels"][0]["type"] == "state-timeline"
