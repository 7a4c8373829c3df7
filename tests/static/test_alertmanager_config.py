"""Alertmanager configuration, checked by Debian's amtool: valid, routes by severity, inhibits
only alerts that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "streams" / "resources" / "prometheus" / "rules" / "ccmon.yml"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


def alerts() -> dict[str, dict]:
    return {
        r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }


def test_config_is_valid():
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_routes_by_its_severity(name):
    severity = alerts()[name]["labels"]["severity"]
    expected = {"page": "on-call", "ticket": "tickets"}[severity]
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={expected}",
        f"alertname={name}",
        f"severity={severity}",
        "queue=sales",
        "channel=voice",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_inhibitions_name_real_alerts_and_group_by_queue():
    doc = yaml.safe_load(CONFIG.read_text())
    known = set(alerts())
    for rule in doc["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            found = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            assert found, matcher
            names = found.group(1).split("|")
            assert set(names) <= known, names
    assert doc["route"]["group_by"] == ["alertname", "queue", "channel"]
