"""Grafana as code against real servers: every query of the dashboards and the rule files runs
against a real Prometheus scraping a worker fed by the simulator. (That the committed dashboards
are the generator's output and keep their contract is tests/static/test_grafana_dashboards.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import date, datetime

import pytest
import yaml

from grafana.generate import DASHBOARDS, OUT
from producers.recording import line
from streams import config
from tests.integration.support import ROOT, Env, Worker, flat_traffic, prom_query, start_prometheus

pytestmark = pytest.mark.integration

RULES = ROOT / "streams" / "resources" / "prometheus" / "rules"


def dashboards() -> dict[str, dict]:
    return {name: json.loads((OUT / name).read_text()) for name in DASHBOARDS}


def queries() -> list[tuple[str, str, bool]]:
    """(where, expr, must_return_data) for every expression of the dashboards and rule files."""
    out = []
    for name, d in dashboards().items():
        for panel in d["panels"]:
            for target in panel.get("targets", []):
                expr = (
                    target["expr"].replace("$queue", ".*").replace("$channel", ".*").replace("$agent", ".*")
                )
                out.append((f"{name}: {panel['title']}", expr, True))
    for f in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                # recording rules must return data; an alert's expression returns data only while
                # it fires, so it must parse and run (its firing is proven by the promtool tests)
                out.append(
                    (f"{f.name}: {rule.get('record') or rule.get('alert')}", rule["expr"], "record" in rule)
                )
    cookbook = (ROOT / "docs" / "promql.md").read_text()
    for i, expr in enumerate(re.findall(r"```promql\n(.*?)```", cookbook, re.S)):
        out.append((f"docs/promql.md query {i + 1}", expr.strip(), True))
    return out


def local_day() -> date:
    """The calendar day of the worker's `today` window (CCMON_TIMEZONE, inherited from here)."""
    return datetime.fromtimestamp(time.time(), config.load().zone).date()


def replay_later_spec_events(env: Env, tmp_path, round_: int) -> None:
    """Missed offers, dequeued contacts, CES answers and a first response at the current time,
    whatever the simulator emits: the dashboards' queries on them must have data too. Fresh ids
    and times each round, so a round after midnight refills the ``today`` window."""
    now_ms = int(time.time() * 1000)
    calls, rows = env.topics["calls"], []
    for i in range(3):
        cid = f"later-{round_}-{i}"
        steps: list[tuple[str, int, dict[str, object]]] = [
            ("offered", 4000, {"queue": "sales"}),
            ("missed", 3000, {"agent_id": "agent-x"}),
            ("answered", 2000, {"agent_id": "agent-y"}),
            ("ended", 1000, {}),
            ("survey", 0, {"ces": 5 + i}),
        ]
        for k, (etype, back_ms, extra) in enumerate(steps):
            rows.append(
                line(
                    calls,
                    cid,
                    {
                        "event_id": f"{cid}-{k}",
                        "type": etype,
                        "contact_id": cid,
                        "ts": now_ms - back_ms,
                        **extra,
                    },
                )
            )
        did = f"later-d-{round_}-{i}"
        rows.append(
            line(
                calls,
                did,
                {
                    "event_id": f"{did}-0",
                    "type": "offered",
                    "contact_id": did,
                    "queue": "sales",
                    "ts": now_ms - 4000,
                },
            )
        )
        rows.append(
            line(
                calls,
                did,
                {
                    "event_id": f"{did}-1",
                    "type": "dequeued",
                    "contact_id": did,
                    "reason": "timeout",
                    "ts": now_ms,
                },
            )
        )
    # a chat contact whose agent replies 2 s after the answer: first response time has data
    chats, hid = env.topics["chats"], f"later-h-{round_}"
    chat: list[tuple[str, int, dict[str, object]]] = [
        ("offered", 4000, {"queue": "sales"}),
        ("answered", 3000, {"agent_id": "agent-z"}),
        ("responded", 1000, {}),
    ]
    for k, (etype, back_ms, extra) in enumerate(chat):
        rows.append(
            line(
                chats,
                hid,
                {"event_id": f"{hid}-{k}", "type": etype, "contact_id": hid, "ts": now_ms - back_ms, **extra},
            )
        )
    rows += returning_customers(env, round_, now_ms)
    path = tmp_path / f"later-{round_}.jsonl"
    path.write_bytes(b"".join(rows))
    result = env.ccmon("replay", str(path))
    assert result.returncode == 0, result.stderr


#: the customer stage in windows of seconds (R = 20 s, W = 10 s, lateness 5 s), so that a few
#: rounds of returning customers decide repeats, recoveries, losses and operational FCR
CUSTOMERS = {"CCMON_REPEAT_WINDOW_S": "20", "CCMON_RECOVERY_WINDOW_S": "10", "CCMON_LATENESS_S": "5"}
CUSTOMER_METRICS = ("repeat", "abandon", "fcr", "resolution", "at_risk", "per_case")


def returning_customers(env: Env, round_: int, now_ms: int) -> list[bytes]:
    """Per round: a customer who abandons and is answered on the next call (recovered, a repeat,
    handled, its case resolved), one who abandons and is gone (lost, at risk), and contacts of
    eight more customers, so that every facts partition's customer clock moves on."""
    calls, rows = env.topics["calls"], []

    def contact(cid: str, who: str, *steps: tuple[str, int, dict[str, object]]) -> None:
        for k, (etype, back_ms, extra) in enumerate(steps):
            doc = {
                "event_id": f"{cid}-{k}",
                "type": etype,
                "contact_id": cid,
                "ts": now_ms - back_ms,
                **extra,
            }
            rows.append(line(calls, cid, {**doc, "customer": who} if k == 0 else doc))

    back, gone = f"+4910{round_}", f"+4920{round_}"
    contact(f"cu-{round_}-1", back, ("offered", 4000, {"queue": "sales"}), ("abandoned", 3800, {}))
    contact(
        f"cu-{round_}-2",
        back,
        ("offered", 3000, {"queue": "sales", "case_id": f"case-{round_}"}),
        ("answered", 2800, {"agent_id": "agent-c"}),
        ("ended", 2000, {}),
        ("wrapup_ended", 1900, {}),
        ("resolved", 1000, {}),
    )
    contact(f"cu-{round_}-3", gone, ("offered", 4000, {"queue": "sales"}), ("abandoned", 3900, {}))
    for i in range(8):
        contact(f"cu-{round_}-t{i}", f"+4930{round_}{i}", ("offered", 0, {"queue": "support"}))
    return rows


def test_every_query_runs_against_real_prometheus_and_returns_data(env: Env, workers: list[Worker], tmp_path):
    key = tmp_path / "customer.key"
    key.write_bytes(b"grafana-test-customer-key-0123456789\n")
    # the Agents dashboard reads the per-agent series; the Customers row the customer stage's
    workers.append(Worker(env, CCMON_AGENT_METRICS="true", CCMON_CUSTOMER_KEY_FILE=str(key), **CUSTOMERS))
    worker = workers[0]
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            *flat_traffic(3, 3600, 4, "--incident", "bad-input:30@3595", "--duration", "180"),
        ],
        cwd=ROOT,
        env=env.vars(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prom, port = start_prometheus(tmp_path, worker.port, sorted(RULES.glob("*.yml")))

    try:
        todo = queries()
        assert len(todo) > 60
        deadline = time.monotonic() + 100
        day = local_day()
        missing = todo
        rounds = 0
        while missing and time.monotonic() < deadline:
            if local_day() != day:  # midnight: the new day's window fills from the live traffic
                day, deadline = local_day(), max(deadline, time.monotonic() + 60)
            # again while a query on them has no data: increase() needs a series that grew after
            # its first sample (a first round may create the chat series and its first response)
            if rounds == 0 or any(
                "ccmon_ces_score" in e or "first_response" in e or any(c in e for c in CUSTOMER_METRICS)
                for _, e, _ in missing
            ):
                replay_later_spec_events(env, tmp_path, rounds)
                rounds += 1
            time.sleep(3)
            failing = []
            for where, expr, need_data in missing:
                try:
                    body = prom_query(port, expr)
                except OSError as exc:
                    failing.append((where, expr, str(exc)))
                    continue
                assert body["status"] == "success", (where, expr, body)
                if need_data and not body["data"]["result"]:
                    failing.append((where, expr, "no data"))
            missing = [(w, e, True) for w, e, _ in failing] if failing else []
        assert not missing, "queries without data:\n" + "\n".join(f"{w}: {e}" for w, e, _ in missing)
        print(
            f"{len(todo)} queries executed against Prometheus, "
            f"{sum(1 for *_, need in todo if need)} with data required"
        )
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        sim.terminate()
        sim.wait(timeout=30)
